"""Reading template.yaml in tests, with CloudFormation's short tags understood."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from cfnlint.decode import decode

from openlookout.local.lambdas import LambdaContext, load_handler
from openlookout.local.template import Function, LocalNames, Template

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
ACCOUNT_ID, REGION = "123456789012", "us-east-1"  # tests/conftest.py's


@cache
def template() -> dict[str, Any]:
    parsed, matches = decode(str(TEMPLATE))
    assert not matches, matches
    return parsed  # type: ignore[return-value]


def resources(kind: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template()["Resources"].items() if res["Type"] == kind}


def api_routes() -> dict[str, tuple[str, str]]:
    """Function logical id -> (METHOD, path) of its Api event."""
    routes = {}
    for name, function in resources("AWS::Serverless::Function").items():
        for event in (function["Properties"].get("Events") or {}).values():
            if event["Type"] == "Api":
                routes[name] = (event["Properties"]["Method"].upper(), event["Properties"]["Path"])
    return routes


def table_for_env(variable: str) -> str:
    """The logical id of the table that a Globals environment variable refers to."""
    value = template()["Globals"]["Function"]["Environment"]["Variables"][variable]
    return value["Ref"]


@cache
def local_functions() -> dict[str, Function]:
    """The template's functions as `openlookout serve` reads them (Globals merged, images too)."""
    return Template(TEMPLATE, LocalNames(account_id=ACCOUNT_ID, region=REGION)).functions()


@cache
def function_module(logical_id: str) -> ModuleType:
    """A function's handler module, imported once, the way `openlookout serve` imports it."""
    return load_handler(local_functions()[logical_id])[1]


def lambda_context(logical_id: str) -> LambdaContext:
    """The context object the local runtime gives the function's handler."""
    return LambdaContext(local_functions()[logical_id], REGION, ACCOUNT_ID)
