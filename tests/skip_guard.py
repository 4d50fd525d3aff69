"""A skipped test is a test that did not run: the run fails when one is skipped for a reason not
listed here (tests/conftest.py installs these hooks; `make test` shows every skip with `-rs`)."""

from __future__ import annotations

import pytest

# The only reasons a test may skip, each with why it cannot run then.
ALLOWED_SKIPS = {
    "needs a CUDA device": "the GPU training option, on a machine without a GPU",
    "OPENLOOKOUT_ENDPOINT is set": "a run against a deployed stack: tests of the local service itself",
    "refused by a deployed (IAM-authorized) API": "a run against a deployed stack: unsigned requests",
    "the folder tool needs the local S3 endpoint": "a run against a deployed stack",
    "no deployed stack named": "tests/integration, when no stack is named",
    "needs Docker": "container builds, where no Docker daemon answers",
}

_unexpected: list[str] = []


def skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    return str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)


def is_allowed(reason: str) -> bool:
    return any(allowed in reason for allowed in ALLOWED_SKIPS)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail") and not is_allowed(skip_reason(report)):
        _unexpected.append(f"{report.nodeid}: {skip_reason(report)}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _unexpected and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _unexpected:
        terminalreporter.section("skipped for a reason not in tests/skip_guard.py's ALLOWED_SKIPS", red=True)
        for line in _unexpected:
            terminalreporter.line(line)
