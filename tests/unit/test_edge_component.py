"""The Greengrass recipe follows the packaging target; L4V's configuration rules are enforced."""

import io
import json
import zipfile
from pathlib import Path

import pytest
import yaml

from openlookout.core.errors import ValidationException
from openlookout.edge.component import (
    AGENT_MODULES,
    PACKAGE_ROOT,
    Target,
    build_recipe,
    build_zip,
    recipe_yaml,
)
from openlookout.services.packaging import check_configuration

LOCATION = {"S3OutputLocation": {"Bucket": "b"}, "ComponentName": "c"}


def _manifest(target: Target) -> dict:
    recipe = yaml.safe_load(recipe_yaml(build_recipe("c", "1.0.0", "d", target, "s3://b/c-1.0.0.zip")))
    assert recipe["ComponentName"] == "c" and recipe["ComponentVersion"] == "1.0.0"
    return recipe["Manifests"][0]  # type: ignore[no-any-return]


def test_cpu_platform_gets_onnxruntime_and_the_cpu_provider():
    manifest = _manifest(Target.of({**LOCATION, "TargetPlatform": {"Os": "LINUX", "Arch": "X86_64"}}))
    assert manifest["Platform"] == {"os": "linux", "architecture": "amd64"}
    assert "'onnxruntime>=" in manifest["Lifecycle"]["Install"]
    assert "--provider CPUExecutionProvider" in manifest["Lifecycle"]["Run"]
    assert "CUDA" not in manifest["Lifecycle"]["Run"]


def test_nvidia_and_jetson_get_onnxruntime_gpu_and_cuda():
    nvidia = {"Os": "LINUX", "Arch": "ARM64", "Accelerator": "NVIDIA"}
    for greengrass in ({**LOCATION, "TargetPlatform": nvidia}, {**LOCATION, "TargetDevice": "jetson_xavier"}):
        manifest = _manifest(Target.of(greengrass))
        assert manifest["Platform"] == {"os": "linux", "architecture": "aarch64"}
        assert "'onnxruntime-gpu>=" in manifest["Lifecycle"]["Install"]
        assert (
            "--provider CUDAExecutionProvider --provider CPUExecutionProvider" in manifest["Lifecycle"]["Run"]
        )


def test_zip_holds_model_and_every_agent_module(tmp_path: Path):
    (tmp_path / "model.onnx").write_bytes(b"onnx")
    (tmp_path / "model.json").write_text("{}")
    archive = zipfile.ZipFile(io.BytesIO(build_zip(tmp_path, {"ComponentName": "c"})))
    names = set(archive.namelist())
    assert {"model/model.onnx", "model/model.json", "model/component.json"} <= names
    assert json.loads(archive.read("model/component.json")) == {"ComponentName": "c"}
    # Every module of the edge package travels (a new one must be added to AGENT_MODULES).
    edge = {f"edge/{p.name}" for p in (PACKAGE_ROOT / "edge").iterdir() if p.suffix in (".py", ".proto")}
    assert edge - {"edge/component.py"} <= set(AGENT_MODULES)
    assert {f"agent/openlookout/{m}" for m in AGENT_MODULES} <= names


@pytest.mark.parametrize(
    ("greengrass", "message"),
    [
        ({}, "exactly one"),
        (
            {"TargetDevice": "jetson_xavier", "TargetPlatform": {"Os": "LINUX", "Arch": "X86_64"}},
            "exactly one",
        ),
        ({"TargetDevice": "jetson_xavier", "CompilerOptions": "{}"}, "not allowed with TargetDevice"),
        ({"TargetPlatform": {"Os": "LINUX", "Arch": "X86_64", "Accelerator": "NVIDIA"}}, "gpu-code"),
        (
            {
                "TargetPlatform": {"Os": "LINUX", "Arch": "X86_64", "Accelerator": "NVIDIA"},
                "CompilerOptions": '{"gpu-code": "sm_75", "trt-ver": "7.1.3"}',
            },
            "missing: cuda-ver",
        ),
        (
            {"TargetPlatform": {"Os": "LINUX", "Arch": "X86_64"}, "CompilerOptions": "[1]"},
            "not a JSON object",
        ),
        (
            {"TargetPlatform": {"Os": "LINUX", "Arch": "X86_64"}, "CompilerOptions": '{"x": 1}'},
            "mcpu and mattr",
        ),
    ],
)
def test_configuration_rules(greengrass: dict, message: str):
    with pytest.raises(ValidationException) as excinfo:
        check_configuration({**LOCATION, **greengrass})
    assert message in excinfo.value.message


def test_valid_configurations_pass():
    check_configuration({**LOCATION, "TargetDevice": "jetson_xavier"})
    nvidia = {"Os": "LINUX", "Arch": "X86_64", "Accelerator": "NVIDIA"}
    options = '{"gpu-code": "sm_75", "trt-ver": "7.1.3", "cuda-ver": "10.2"}'
    check_configuration({**LOCATION, "TargetPlatform": nvidia, "CompilerOptions": options})
    check_configuration(
        {**LOCATION, "TargetPlatform": {"Os": "LINUX", "Arch": "ARM64"}, "CompilerOptions": '{"mcpu": "x"}'}
    )


def test_the_agent_modules_carry_every_module_they_import() -> None:
    """A relative import inside the zip must find its module there (a new engine import broke it once)."""
    import ast

    package = Path(__file__).resolve().parents[2] / "openlookout"
    carried = set(AGENT_MODULES)
    for module in (m for m in AGENT_MODULES if m.endswith(".py")):
        folder = Path(module).parent
        for node in ast.walk(ast.parse((package / module).read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                target = (folder / (node.module.replace(".", "/") + ".py")).as_posix()
                assert target in carried or (folder / node.module / "__init__.py").as_posix() in carried, (
                    f"{module} imports .{node.module}, which the agent zip does not carry"
                )


def test_the_recipe_passes_the_socket_and_its_mode_from_the_configuration() -> None:
    recipe = yaml.safe_load(
        recipe_yaml(build_recipe("c", "1.0.0", "d", Target("LINUX", "X86_64", None), "s3://b/k"))
    )
    assert recipe["ComponentConfiguration"]["DefaultConfiguration"] == {
        "Socket": "/tmp/aws.iot.lookoutvision.EdgeAgent.sock",  # where L4V's clients look
        "SocketMode": "600",
    }
    run = recipe["Manifests"][0]["Lifecycle"]["Run"]
    assert "--socket {configuration:/Socket} --socket-mode {configuration:/SocketMode}" in run


def test_the_edge_modules_import_each_other_in_one_direction_only() -> None:
    """No cycles among openlookout/edge's modules (agent and command once imported each other)."""
    import ast

    edge = PACKAGE_ROOT / "edge"
    graph: dict[str, set[str]] = {}
    for path in edge.glob("*.py"):
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "openlookout.edge":
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("openlookout.edge."):
                imported.add(str(node.module).rsplit(".", 1)[1])
        graph[path.stem] = imported & {p.stem for p in edge.glob("*.py")}

    def reaches(start: str, goal: str, seen: frozenset[str] = frozenset()) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph[start])

    assert graph["command"] and graph["agent"], graph  # the check sees the imports
    assert [module for module in graph if reaches(module, module)] == []
