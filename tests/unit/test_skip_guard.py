"""The run fails when a test is skipped for a reason outside tests/skip_guard.py's allow-list."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOOKS = "pytest_runtest_logreport, pytest_sessionfinish, pytest_terminal_summary"
CONFTEST = f"from tests.skip_guard import {HOOKS}\n"


def run_suite(folder: Path, reason: str) -> subprocess.CompletedProcess[str]:
    folder.mkdir()
    (folder / "conftest.py").write_text(CONFTEST)
    (folder / "test_x.py").write_text(
        f"import pytest\n\ndef test_runs():\n    pass\n\ndef test_skips():\n    pytest.skip({reason!r})\n"
    )
    command = [sys.executable, "-m", "pytest", str(folder), "-q", "-rs", "-p", "no:cacheprovider"]
    return subprocess.run(command, capture_output=True, text=True, env={"PYTHONPATH": str(ROOT)}, cwd=folder)


def test_an_unlisted_skip_fails_the_run_and_names_the_test(tmp_path: Path) -> None:
    done = run_suite(tmp_path / "unlisted", "../shared/datasets/mvtec-bottle is not here")
    assert done.returncode == 1, done.stdout
    assert "skipped for a reason not in" in done.stdout
    assert "test_x.py::test_skips: Skipped: ../shared/datasets/mvtec-bottle is not here" in done.stdout


def test_an_allowed_skip_passes(tmp_path: Path) -> None:
    done = run_suite(tmp_path / "allowed", "needs a CUDA device (the GPU training option)")
    assert done.returncode == 0, done.stdout
    assert "SKIPPED [1]" in done.stdout and "needs a CUDA device" in done.stdout
