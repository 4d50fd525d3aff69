from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.contract.conftest import ROOT, LocalServer, free_port


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Iterator[Any]:
    """Keeps each phase's report on the test item, so a fixture can screenshot a failure."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    """`openlookout serve` with the plain template (no test overlay), as a user runs it; one per module."""
    tmp = Path(tempfile.mkdtemp(prefix="openlookout-e2e-"))
    local = LocalServer(tmp / "data", free_port())
    local.command = lambda: [  # type: ignore[method-assign]
        sys.executable, "-m", "openlookout.cli", "serve",
        "--port", str(local.port), "--data-dir", str(local.data_dir),
        "--template", str(ROOT / "template.yaml"),
    ]  # fmt: skip
    local.start()
    try:
        yield local
    finally:
        local.stop()
        shutil.rmtree(tmp, ignore_errors=True)
