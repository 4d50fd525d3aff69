"""Two suites against the real AWS toolchain.

- test_sam_local.py (`make test-integration`): the template in Lambda containers, as
  `make sam-local` runs it (docker/sam_local.py: `sam local start-api` and `start-lambda`, DynamoDB
  Local, the local S3 store), started once per session on a free port and a fresh data dir.
- test_deployed.py (`make integration`): the contract tests against a deployed stack; set
  OPENLOOKOUT_ENDPOINT to its ApiEndpoint output. Against AWS the lookoutvision client signs for
  API Gateway (`execute-api`), as the README tells users to; s3 goes to AWS's own S3 with the
  default credential chain.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from openlookout.client import use_api_gateway_signing
from openlookout.local.backends import die_with_parent
from tests.contract.conftest import (  # noqa: F401 - fixtures reused as they are
    client_for,
    free_port,
    local_service,
    s3,
    service,
    stepfunctions,
    unique_name,
)
from tests.contract.test_models import wait_for

ENDPOINT = os.environ.get("OPENLOOKOUT_ENDPOINT")
ROOT = Path(__file__).resolve().parents[2]
SAM_LOCAL = ROOT / "docker" / "sam_local.py"
READY_LINE = "OpenLookout (sam local) listening on "
START_TIMEOUT_S = float(os.environ.get("OPENLOOKOUT_START_TIMEOUT", "300"))
USER_CREDENTIALS = {"aws_access_key_id": "integration", "aws_secret_access_key": "integration"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ENDPOINT:
        return
    skip = pytest.mark.skip(
        reason="no deployed stack named: set OPENLOOKOUT_ENDPOINT to a stack's ApiEndpoint "
        "(sam deploy) to run the contract suite against it; `make test-integration` runs "
        "test_sam_local.py against Lambda containers instead"
    )
    for item in items:
        if item.fspath.basename == "test_deployed.py":
            item.add_marker(skip)


@pytest.fixture(scope="session")
def lookoutvision(service: Any) -> Any:  # noqa: F811 - the deployed API needs execute-api signatures
    client = client_for(service, "lookoutvision")
    if ".execute-api." in (ENDPOINT or ""):
        use_api_gateway_signing(client)
    return client


class SamLocal:
    """docker/sam_local.py as a subprocess; its output goes to <data dir>/sam-local.log."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.log_path = data_dir / "sam-local.log"
        self.endpoint_url = ""
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        command = [sys.executable, str(SAM_LOCAL), "--port", str(port), "--data-dir", str(self.data_dir)]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        ready = threading.Event()
        threading.Thread(target=self._copy_output, args=(ready,), daemon=True).start()
        if not ready.wait(START_TIMEOUT_S) or not self.endpoint_url:
            self.stop()
            pytest.fail(
                f"make sam-local did not start in {START_TIMEOUT_S:.0f} s (it needs `make lambda-images` "
                f"and `make sam-build-local`; `make test-integration` runs both):\n{self.log_tail()}"
            )

    def _copy_output(self, ready: threading.Event) -> None:
        assert self.process is not None and self.process.stdout is not None
        with open(self.log_path, "a") as log:
            for line in self.process.stdout:
                log.write(line)
                log.flush()
                if line.startswith(READY_LINE):
                    self.endpoint_url = line[len(READY_LINE) :].strip()
                    ready.set()
        ready.set()  # exited before it was ready

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text() if self.log_path.exists() else ""
        logs = sorted((self.data_dir / "logs").glob("start-*.log"))
        for path in logs:
            text += f"\n--- {path.name}\n" + "\n".join(path.read_text().splitlines()[-lines:])
        return "\n".join(text.splitlines()[-3 * lines :])

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(90)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


@pytest.fixture(scope="session")
def sam_local() -> Iterator[SamLocal]:
    keep = bool(os.environ.get("OPENLOOKOUT_KEEP_DATA"))
    tmp = Path(tempfile.mkdtemp(prefix="openlookout-sam-local-"))
    running = SamLocal(tmp / "data")
    running.start()
    try:
        yield running
    finally:
        running.stop()
        if keep:
            print(f"\nsam-local data and logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def user_client(sam_local: SamLocal, name: str) -> Any:
    """A plain boto3 client with made-up credentials, as the README's snippets make them."""
    return boto3.client(
        name,  # type: ignore[call-overload]
        endpoint_url=sam_local.endpoint_url,
        region_name="us-east-1",
        config=Config(retries={"mode": "standard", "max_attempts": 1}, read_timeout=120),
        **USER_CREDENTIALS,
    )


@pytest.fixture(scope="session")
def lv(sam_local: SamLocal) -> Any:
    return user_client(sam_local, "lookoutvision")


@pytest.fixture(scope="session")
def s3_user(sam_local: SamLocal) -> Any:
    return user_client(sam_local, "s3")


def wait_until(describe: Any, done: set[str], timeout_s: float) -> dict[str, Any]:
    """The contract tests' wait, polling every 2 s: each describe is a Lambda container's call."""
    return wait_for(describe, done, timeout_s, poll_s=2)
