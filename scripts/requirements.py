"""Writes the requirement files of the Lambda layers and the training image from pyproject.toml.

`[tool.openlookout.requirements]` names, for each file, which dependencies it installs; the
version bounds come from `[project]`, so they are declared once. `--check` writes nothing and
fails when a file differs from what would be written (tests/unit/test_requirements.py runs it).
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = "# Written by `make requirements` from pyproject.toml: edit that file, not this one.\n"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(project: dict) -> dict[str, str]:
    """Every requirement of the project (its dependencies and extras), by canonical name."""
    specs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        specs.extend(extra)
    found: dict[str, str] = {}
    for spec in specs:
        name = re.match(r"[A-Za-z0-9._-]+", spec)
        assert name is not None, spec
        found.setdefault(canonical(name.group(0)), spec.strip())
    return found


def requirement_files(pyproject: Path = ROOT / "pyproject.toml") -> dict[Path, str]:
    config = tomllib.loads(pyproject.read_text())
    specs = declared(config["project"])
    files: dict[Path, str] = {}
    for path, names in config["tool"]["openlookout"]["requirements"].items():
        unknown = [name for name in names if canonical(name) not in specs]
        if unknown:
            raise SystemExit(f"{path}: {', '.join(unknown)} not among pyproject.toml's dependencies")
        files[ROOT / path] = HEADER + "".join(specs[canonical(name)] + "\n" for name in names)
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a file differs; write nothing")
    args = parser.parse_args()
    stale = []
    for path, text in requirement_files().items():
        if path.exists() and path.read_text() == text:
            continue
        stale.append(str(path.relative_to(ROOT)))
        if not args.check:
            path.write_text(text)
    if args.check and stale:
        print("out of date (run `make requirements`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
