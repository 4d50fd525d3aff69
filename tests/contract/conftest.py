"""Contract tests: plain boto3 clients against `openlookout serve`, started once per session.

Set OPENLOOKOUT_ENDPOINT to run the same tests against another endpoint (a deployed stack's
API URL, or a server you started yourself): no server is started then, the clients use the
default credential chain and AWS_REGION, and tests that need the local service skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from openlookout.local.backends import die_with_parent

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_OVERLAY = Path(__file__).resolve().parent / "runtime_app" / "template.yaml"
READY_LINE = "OpenLookout listening on "
START_TIMEOUT_S = float(os.environ.get("OPENLOOKOUT_START_TIMEOUT", "90"))  # a busy 2-core box is slow
REGION = "us-east-1"
DUMMY_CREDENTIALS = {"aws_access_key_id": "contract", "aws_secret_access_key": "contract"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _descendants(pid: int) -> list[int]:
    """Pids whose parent chain leads to `pid` (Linux /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        children = [child for child, parent in parents.items() if parent == current]
        found.extend(children)
        frontier.extend(children)
    return found


def process_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class LocalServer:
    """`openlookout serve` as a subprocess on a fixed port and data dir, restartable."""

    is_local = True

    def __init__(self, data_dir: Path, port: int, extra_args: list[str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = port
        self.endpoint_url = f"http://127.0.0.1:{port}"
        self.log_path = data_dir.parent / "serve.log"
        self.extra_args = extra_args or []
        self.process: subprocess.Popen[bytes] | None = None
        self.start_seconds = 0.0

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "openlookout.cli", "serve",
            "--port", str(self.port),
            "--data-dir", str(self.data_dir),
            "--template", str(ROOT / "template.yaml"),
            "--template", str(RUNTIME_OVERLAY),
            *self.extra_args,
        ]  # fmt: skip

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it
        started = time.monotonic()
        self.process = subprocess.Popen(
            self.command(),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,  # a killed pytest must not leave servers behind
        )
        log.close()
        deadline = started + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if READY_LINE in self._log_since(offset):
                self.start_seconds = time.monotonic() - started
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        tail = self.log_tail()
        self.kill()
        pytest.fail(f"openlookout serve did not start (rc={self.process.poll()}); log tail:\n{tail}")

    def _log_since(self, offset: int) -> str:
        with open(self.log_path, "rb") as stream:
            stream.seek(offset)
            return stream.read().decode("utf-8", "replace")

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text("utf-8", "replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def child_pids(self) -> list[int]:
        return _descendants(self.process.pid) if self.process else []

    def stop(self, timeout_s: float = 20.0) -> float:
        """SIGTERM, as a service manager would; returns how long the server took to exit."""
        if self.process is None or self.process.poll() is not None:
            return 0.0
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"openlookout serve ignored SIGTERM for {timeout_s} s; log tail:\n{self.log_tail()}")
        return time.monotonic() - started

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


class RemoteService:
    """An endpoint someone else runs (OPENLOOKOUT_ENDPOINT): nothing to start or stop."""

    is_local = False
    data_dir = None

    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url

    def start(self) -> None:
        pytest.skip("needs the local service (OPENLOOKOUT_ENDPOINT is set)")

    def stop(self, timeout_s: float = 20.0) -> float:
        pytest.skip("needs the local service (OPENLOOKOUT_ENDPOINT is set)")


Service = LocalServer | RemoteService


_running: list[LocalServer] = []


@pytest.fixture(scope="session")
def service() -> Iterator[Service]:
    endpoint = os.environ.get("OPENLOOKOUT_ENDPOINT")
    if endpoint:
        yield RemoteService(endpoint.rstrip("/"))
        return
    # OPENLOOKOUT_KEEP_DATA=1 keeps the data dir and serve.log for a look after the run.
    keep = bool(os.environ.get("OPENLOOKOUT_KEEP_DATA"))
    tmp = tempfile.mkdtemp(prefix="openlookout-contract-")
    # The runtime tests drive the local Step Functions API directly: open it (closed by default).
    server = LocalServer(Path(tmp) / "data", free_port(), ["--debug-backends"])
    server.start()
    _running.append(server)
    try:
        yield server
    finally:
        _running.remove(server)
        server.stop()
        if keep:
            print(f"\nopenlookout serve data and log kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test shows the server log's tail next to its traceback."""
    report = yield
    if call.excinfo is not None and _running and report.failed:  # type: ignore[attr-defined]
        report.sections.append(("openlookout serve log (tail)", _running[0].log_tail(80)))  # type: ignore[attr-defined]
    return report


@pytest.fixture
def local_service(service: Service) -> LocalServer:
    """The service, for tests that need to restart it or look at its files."""
    if not isinstance(service, LocalServer):
        pytest.skip("needs the local service (OPENLOOKOUT_ENDPOINT is set)")
    return service


def client_for(service: Service, name: str, **config: Any) -> Any:
    """A plain boto3 client. Locally every service is on the one endpoint; against a deployed
    stack only lookoutvision is (its API URL), s3 and stepfunctions are AWS's own."""
    kwargs: dict[str, Any] = {"config": Config(retries={"mode": "standard", "max_attempts": 1}, **config)}
    if service.is_local:
        kwargs.update(endpoint_url=service.endpoint_url, region_name=REGION, **DUMMY_CREDENTIALS)
    else:
        kwargs["region_name"] = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or REGION
        if name == "lookoutvision":
            kwargs["endpoint_url"] = service.endpoint_url
    return boto3.session.Session().client(name, **kwargs)  # type: ignore[call-overload]


@pytest.fixture(scope="session")
def lookoutvision(service: Service) -> Any:
    return client_for(service, "lookoutvision")


@pytest.fixture(scope="session")
def s3(service: Service) -> Any:
    return client_for(service, "s3")


@pytest.fixture(scope="session")
def stepfunctions(service: Service) -> Any:
    return client_for(service, "stepfunctions")


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """unique_name("proj") -> "proj-3f9a1c2b": names no other test (or earlier run) uses."""

    def make(prefix: str = "t") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:8]}"

    return make
