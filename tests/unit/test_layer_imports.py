"""Every package a Lambda function imports at cold start is in one of its layers (or the runtime).

The layers' requirement files are written from pyproject.toml; this checks them against the code:
it follows each handler's module-level imports through openlookout/ and maps every third-party
module to the distribution that provides it. (Dataset import once imported Pillow from a layer that
did not carry it: it only showed on AWS.)
"""

from __future__ import annotations

import ast
import re
import sys
from functools import cache
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

import pytest

from openlookout.local.template import LocalNames, Template
from tests.template_support import ROOT, TEMPLATE
from tests.unit.test_requirements import load_script

# The requirement files' writer: one rule for normalising distribution names.
_REQUIREMENTS = load_script()

# What the python3.12 Lambda runtime brings itself.
RUNTIME = {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "urllib3", "six"}


def _dist_name(requirement: str) -> tuple[str, set[str]]:
    """('name', {extras}) of a requirement line, the name normalised as PyPI does."""
    match = re.match(r"\s*([A-Za-z0-9_.-]+)\s*(?:\[([^\]]*)\])?", requirement)
    assert match, requirement
    extras = {e.strip() for e in (match.group(2) or "").split(",") if e.strip()}
    return _REQUIREMENTS.canonical(match.group(1)), extras


@cache
def _with_dependencies(name: str, extras: frozenset[str] = frozenset()) -> frozenset[str]:
    """The distribution and everything it installs (its extras' requirements only when asked)."""
    found = {name}
    try:
        lines = requires(name) or []
    except PackageNotFoundError:
        return frozenset(found)
    for line in lines:
        marker = line.split(";", 1)[1] if ";" in line else ""
        wanted_extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
        if wanted_extra and wanted_extra.group(1) not in extras:
            continue
        if "python_version" in marker or "platform" in marker or "sys_platform" in marker:
            continue  # environment-specific: not what the Lambda runtime installs necessarily
        dep, dep_extras = _dist_name(line)
        found |= _with_dependencies(dep, frozenset(dep_extras))
    return frozenset(found)


def _installed_by(requirement_files: list[Path]) -> set[str]:
    names = set(RUNTIME)
    for path in requirement_files:
        for line in path.read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                name, extras = _dist_name(line.split("#", 1)[0])
                names |= _with_dependencies(name, frozenset(extras))
    return names


def _module_file(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _top_level_imports(path: Path, package: str) -> set[str]:
    """Modules imported when the file is imported: module-level statements, not function bodies and
    not `if TYPE_CHECKING:` blocks."""
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)

    visit(ast.parse(path.read_text()).body)
    return found


def third_party_imports(handler_file: Path) -> set[str]:
    """Top-level names of the non-stdlib, non-openlookout modules a handler imports at cold start."""
    seen: set[str] = set()
    third_party: set[str] = set()
    todo = [(handler_file, "app")]
    while todo:
        path, package = todo.pop()
        for module in _top_level_imports(path, package):
            top = module.split(".")[0]
            if top == "openlookout":
                parts = module.split(".")
                for i in range(1, len(parts) + 1):  # importing a.b.c runs a, a.b and a.b.c
                    name = ".".join(parts[:i])
                    file = _module_file(name)
                    if name not in seen and file is not None:
                        seen.add(name)
                        todo.append((file, name if file.name == "__init__.py" else name.rsplit(".", 1)[0]))
            elif top not in sys.stdlib_module_names and top not in ("app", "__future__"):
                third_party.add(top)
    return third_party


@cache
def _zip_functions() -> dict[str, tuple[Path, list[Path]]]:
    """Logical id -> (handler file, the requirement files of its layers and its own folder)."""
    template = Template(TEMPLATE, LocalNames())
    result = {}
    for logical_id in template.functions():
        props = template.function_properties(logical_id)
        if props.get("PackageType") == "Image":
            continue  # _image_functions()
        code = ROOT / str(props["CodeUri"])
        files = [
            ROOT / str(template.resources[layer["Ref"]]["Properties"]["ContentUri"]) / "requirements.txt"
            for layer in props.get("Layers", [])
        ]
        result[logical_id] = (
            code / "app.py",
            [f for f in [*files, code / "requirements.txt"] if f.is_file()],
        )
    return result


# What the training image's Dockerfile installs itself, beside its requirements file (pinned there).
IMAGE_PINNED = {"torch"}


@cache
def _image_functions() -> dict[str, tuple[Path, list[Path]]]:
    """Logical id -> (handler file, the requirement file its Dockerfile installs)."""
    template = Template(TEMPLATE, LocalNames())
    result = {}
    for logical_id, resource in template.resources.items():
        if resource.get("Properties", {}).get("PackageType") != "Image":
            continue
        folder = (ROOT / resource["Metadata"]["Dockerfile"]).parent
        result[logical_id] = (folder / "app.py", [folder / "requirements.txt"])
    return result


@cache
def _providers() -> dict[str, list[str]]:
    return dict(packages_distributions())


@pytest.mark.parametrize("logical_id", sorted(_zip_functions()) + sorted(_image_functions()))
def test_every_cold_start_import_is_installed(logical_id: str) -> None:
    handler, requirement_files = {**_zip_functions(), **_image_functions()}[logical_id]
    installed = _installed_by(requirement_files) | set(
        IMAGE_PINNED if logical_id in _image_functions() else ()
    )
    providers = _providers()
    missing = {
        module: providers.get(module, ["?"])
        for module in third_party_imports(handler)
        if not {_dist_name(d)[0] for d in providers.get(module, [module])} & installed
    }
    assert not missing, f"{logical_id} imports {missing}, which none of {requirement_files} installs"


def test_the_check_sees_a_missing_package(tmp_path: Path) -> None:
    handler = tmp_path / "app.py"
    handler.write_text("import yaml\nfrom openlookout.ml.serving import image_header\n")
    imports = third_party_imports(handler)
    assert {"yaml", "PIL"} <= imports
    layer = tmp_path / "requirements.txt"
    layer.write_text("pyyaml>=6\n")
    assert "pillow" not in _installed_by([layer]) and "pyyaml" in _installed_by([layer])
