from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Iterator[Any]:
    """Keeps each phase's report on the test item, so a fixture can screenshot a failure."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
