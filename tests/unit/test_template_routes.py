"""template.yaml and the service model must agree: one route per implemented operation."""

import ast
from pathlib import Path

from openlookout.api.service_model import routes, service_model
from tests.template_support import ROOT, api_routes, resources


def _operation_of(code_uri: str) -> str | None:
    """The operation name a handler module passes to @api_operation, read from its source."""
    source = (ROOT / code_uri / "app.py").read_text()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "api_operation":
            return node.args[0].value  # type: ignore[attr-defined,no-any-return]
    return None


def test_every_template_route_is_the_models_method_and_uri():
    model_routes = {(r.method, r.path): r.operation for r in routes()}
    functions = resources("AWS::Serverless::Function")
    assert api_routes(), "the template has no API routes"
    for logical_id, (method, path) in api_routes().items():
        assert (method, path) in model_routes, f"{logical_id}: {method} {path} is not in the service model"
        operation = model_routes[(method, path)]
        code_uri = functions[logical_id]["Properties"]["CodeUri"]
        assert _operation_of(code_uri) == operation, f"{logical_id} serves {operation}"
        assert logical_id == f"{operation}Function"


def test_no_two_functions_share_a_route():
    seen = list(api_routes().values())
    assert len(seen) == len(set(seen))


def test_every_operation_handler_directory_is_in_the_template():
    code_uris = set()
    for res in resources("AWS::Serverless::Function").values():
        if "CodeUri" in res["Properties"]:
            code_uris.add(Path(res["Properties"]["CodeUri"]).name)
        elif "Dockerfile" in res.get("Metadata", {}):  # a container image built from functions/<name>/
            code_uris.add(Path(res["Metadata"]["Dockerfile"]).parent.name)
    for directory in (ROOT / "functions").iterdir():
        if (directory / "app.py").exists():
            assert directory.name in code_uris, f"functions/{directory.name} is not deployed by template.yaml"


def test_service_model_has_the_22_operations():
    assert len(service_model().operation_names) == 22


def test_all_22_operations_are_served():
    model_routes = {(r.method, r.path): r.operation for r in routes()}
    served = {model_routes[route] for route in api_routes().values()}
    missing = set(service_model().operation_names) - served
    assert not missing, f"operations without a function in template.yaml: {sorted(missing)}"
    assert len(served) == 22


def test_binary_media_types_cover_detect_anomalies_content_types():
    api = resources("AWS::Serverless::Api")["LookoutVisionApi"]["Properties"]
    assert {"image~1png", "image~1jpeg"} <= set(api["BinaryMediaTypes"])
    assert api["Auth"]["DefaultAuthorizer"] == "AWS_IAM"
