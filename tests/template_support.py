"""Reading template.yaml in tests, with CloudFormation's short tags understood."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"


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
