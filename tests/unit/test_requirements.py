"""One source of dependencies: the layers' and the training image's lists are pyproject.toml's."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("requirements_script", ROOT / "scripts" / "requirements.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "path",
    [
        "layers/openlookout/requirements.txt",
        "layers/inference/requirements.txt",
        "functions/train_model/requirements.txt",
    ],
)
def test_requirement_file_is_what_pyproject_writes(path: str) -> None:
    files = load_script().requirement_files()
    assert (ROOT / path).read_text() == files[ROOT / path], f"{path} is out of date: run `make requirements`"


def test_an_unknown_package_is_refused(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\ndependencies = ["numpy>=2.0"]\n'
        '[tool.openlookout.requirements]\n"x/requirements.txt" = ["numpy", "scipy"]\n'
    )
    with pytest.raises(SystemExit, match="scipy"):
        load_script().requirement_files(pyproject)


def test_the_numpy_bound_is_true() -> None:
    """The engine uses NumPy 2 API (np.trapezoid): the declared lower bound must be 2 or more."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    spec = load_script().declared(project)
    bound = re.search(r">=\s*(\d+)", spec["numpy"])
    assert bound is not None and int(bound.group(1)) >= 2
    assert hasattr(np, "trapezoid")
