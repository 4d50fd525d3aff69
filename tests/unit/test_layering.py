"""The domain does not depend on the wire: only the protocol layer and the runtimes import `api`.

Read from the source with `ast`, so a new import anywhere below these packages is caught,
including one inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "openlookout"
# The packages that must not import openlookout.api (core is what they share with it instead).
NEUTRAL = ("core", "lifecycles", "services", "storage", "workflows", "ml")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
    return found


def imports_api(module: str) -> bool:
    return module == "openlookout.api" or module.startswith("openlookout.api.")


@pytest.mark.parametrize("package", NEUTRAL)
def test_package_never_imports_the_protocol_layer(package: str) -> None:
    offending = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {module}"
        for path in sorted((PACKAGE / package).rglob("*.py"))
        for line, module in imported_modules(path)
        if imports_api(module)
    ]
    assert offending == []


def test_the_check_sees_an_api_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from openlookout.api import handler\n")
    assert [m for _, m in imported_modules(module) if imports_api(m)] == ["openlookout.api.handler"]
