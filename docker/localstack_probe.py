"""Which AWS services LocalStack (host mode, no Docker image of its own) serves on this machine,
and whether its Lambda runs functions in the project's Lambda images (README, "Develop with SAM").

    make localstack-probe     (creates .venv-ls with LocalStack; needs `make lambda-images`)

Starts LocalStack on a free loopback port with a throw-away data dir, tries S3, Step Functions,
DynamoDB and Lambda once each, prints one line per service, and stops it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[1]
LOCALSTACK_PYTHON = ROOT / ".venv-ls" / "bin" / "python"
SAM_RIE = sorted(ROOT.glob(".venv-sam/lib/python3*/site-packages/samcli/local/rapid/aws-lambda-rie-x86_64"))
VAR_LIBS = Path("/var/lib/localstack/lib")  # localstack.config.dirs.var_libs in host mode
INIT_VERSION = "v0.1.41-pre"  # localstack-core 4.14.0's LAMBDA_RUNTIME_DEFAULT_VERSION
HANDLER = "def handler(event, context):\n    return {'echo': event}\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def seed_init_binary() -> Path | None:
    """LAMBDA_INIT_BIN_PATH alone does not stop the download: LocalStack installs its own init first
    and copies the local one over it. Where its installer looks (in host mode a fixed machine path,
    /var/lib/localstack/lib, whatever FILESYSTEM_ROOT says), SAM's RIE makes it 'installed'.
    Returns the file made, to remove afterwards."""
    target = VAR_LIBS / "lambda-runtime" / INIT_VERSION / "x86_64/var/rapid/init"
    if not SAM_RIE or target.exists():
        return None
    target.parent.mkdir(parents=True)
    target.write_bytes(SAM_RIE[0].read_bytes())
    target.chmod(0o755)
    return target


def start(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "GATEWAY_SERVER": "hypercorn",  # the default server binds 0.0.0.0 whatever GATEWAY_LISTEN says
        "GATEWAY_LISTEN": f"127.0.0.1:{port}",
        "DNS_ADDRESS": "0",
        "DISABLE_EVENTS": "1",
        "LOCALSTACK_VOLUME_DIR": str(data_dir),
        "FILESYSTEM_ROOT": str(data_dir),
        "LAMBDA_RUNTIME_EXECUTOR": "docker",
        # A local init binary instead of LocalStack's downloaded one: SAM's Runtime Interface Emulator.
        "LAMBDA_INIT_BIN_PATH": str(SAM_RIE[0]) if SAM_RIE else "",
        "LAMBDA_DOCKER_NETWORK": "bridge",
        "DEBUG": "1" if os.environ.get("PROBE_LOG") else "0",
    }
    log = open(data_dir / "localstack.log", "wb")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(
        [str(LOCALSTACK_PYTHON), "-m", "localstack.runtime.main"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_localstack/health", timeout=2).close()
            return process
        time.sleep(0.5)
    raise TimeoutError("LocalStack did not answer in 120 s")


def try_service(name: str, call: Callable[[], str]) -> None:
    started = time.monotonic()
    try:
        result = call()
    except Exception as error:  # each failure is a finding, printed as such
        result = f"FAILS: {type(error).__name__}: {str(error)[:300]}"
    print(f"{name:15} {time.monotonic() - started:6.1f} s  {result}", flush=True)


def probe(endpoint: str) -> None:
    def client(service: str) -> object:
        return boto3.client(  # type: ignore[call-overload]
            service,
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(retries={"max_attempts": 1}, read_timeout=120, connect_timeout=5),
        )

    s3, sfn, ddb, lam = client("s3"), client("stepfunctions"), client("dynamodb"), client("lambda")

    def s3_call() -> str:
        s3.create_bucket(Bucket="probe")
        s3.put_object(Bucket="probe", Key="k", Body=b"v")
        return "works: " + s3.get_object(Bucket="probe", Key="k")["Body"].read().decode()

    def sfn_call() -> str:
        definition = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": 1, "End": True}}}
        arn = sfn.create_state_machine(
            name="probe", definition=json.dumps(definition), roleArn="arn:aws:iam::000000000000:role/r"
        )["stateMachineArn"]
        execution = sfn.start_execution(stateMachineArn=arn)["executionArn"]
        for _ in range(60):
            status = sfn.describe_execution(executionArn=execution)["status"]
            if status != "RUNNING":
                return f"works: Pass state {status}"
            time.sleep(0.5)
        return "FAILS: still RUNNING"

    def ddb_call() -> str:
        ddb.create_table(
            TableName="probe",
            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        ddb.put_item(TableName="probe", Item={"k": {"S": "v"}})
        return "works: " + json.dumps(ddb.get_item(TableName="probe", Key={"k": {"S": "v"}})["Item"])

    def lambda_call() -> str:
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as z:
            z.writestr("app.py", HANDLER)
        lam.create_function(
            FunctionName="probe",
            Runtime="python3.12",
            Handler="app.handler",
            Role="arn:aws:iam::000000000000:role/r",
            Code={"ZipFile": archive.getvalue()},
        )
        for _ in range(120):
            state = lam.get_function(FunctionName="probe")["Configuration"]
            if state["State"] != "Pending":
                break
            time.sleep(1)
        if state["State"] != "Active":
            return f"FAILS: function {state['State']}: {state.get('StateReason', '')[:300]}"
        answer = lam.invoke(FunctionName="probe", Payload=b'{"a": 1}')
        return f"{'FAILS' if answer.get('FunctionError') else 'works'}: {answer['Payload'].read()[:300]!r}"

    for name, call in (
        ("S3", s3_call),
        ("Step Functions", sfn_call),
        ("DynamoDB", ddb_call),
        ("Lambda", lambda_call),
    ):
        try_service(name, call)


def main() -> int:
    if not LOCALSTACK_PYTHON.exists():
        print("no .venv-ls: `make localstack-probe` creates it", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="openlookout-localstack-") as tmp:
        port = free_port()
        seeded = seed_init_binary()
        process = start(Path(tmp), port)
        try:
            probe(f"http://127.0.0.1:{port}")
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
            if seeded is not None:
                shutil.rmtree(VAR_LIBS / "lambda-runtime")
            log = (Path(tmp) / "localstack.log").read_text(errors="replace").splitlines()
            keep = os.environ.get("PROBE_LOG")
            if keep:
                Path(keep).write_text("\n".join(log))
            print("\n".join(line for line in log if "rror" in line or "nstall" in line)[-3000:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
