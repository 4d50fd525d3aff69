"""`openlookout serve`: the template's functions, tables, buckets and state machines on one port."""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import itertools
import logging
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Any

from werkzeug.serving import BaseWSGIServer, make_server

from openlookout.local.backends import (
    DUMMY_KEY,
    LOOPBACK,
    REPO_ROOT,
    Backends,
    MotoBackends,
    choose_backends,
    create_buckets,
    create_tables,
)
from openlookout.local.gateway import Gateway
from openlookout.local.lambdas import Functions
from openlookout.local.proxies import StreamingProxy
from openlookout.local.request_checks import RequestChecks
from openlookout.local.rest_events import Router
from openlookout.local.s3_api import LocalS3
from openlookout.local.s3_store import S3Store
from openlookout.local.template import LocalNames, SecretStore, Template
from openlookout.local.wsgi import StartResponse, WsgiEnviron
from openlookout.settings import DEFAULT_REGION, Settings

if TYPE_CHECKING:
    from openlookout.local.stepfunctions import StepFunctions

# Not under "openlookout": Powertools filters records of loggers named like its service.
log = logging.getLogger("serve")

DEFAULT_DATA_DIR = ".openlookout"
DEFAULT_TEMPLATE = "template.yaml"


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 3000
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    template: Path | None = None
    overlays: list[Path] = field(default_factory=list)
    backend: str = "auto"  # auto | local | moto
    account_id: str = "000000000000"
    region: str = DEFAULT_REGION
    parameter_overrides: dict[str, str] = field(default_factory=dict)
    max_executions: int = 8
    allow_remote: bool = False  # serve on an address other than loopback
    debug_backends: bool = False  # anyone may call the dynamodb/states routes, not just the handlers
    shutdown_grace_s: float = 10.0  # how long in-flight requests may run on after a stop signal


def find_template(explicit: Path | None) -> Path:
    if explicit is not None:
        return explicit
    for candidate in (Path.cwd() / DEFAULT_TEMPLATE, REPO_ROOT / DEFAULT_TEMPLATE):
        if candidate.exists():
            return candidate
    raise FileNotFoundError("no template.yaml here; pass --template")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


class DataDirLock:
    """Two servers on one data dir would corrupt DynamoDB Local's database: refuse the second."""

    def __init__(self, data_dir: Path) -> None:
        self._file: IO[str] = open(data_dir / ".lock", "w")  # noqa: SIM115 - held for the process lifetime
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            raise RuntimeError(f"{data_dir} is in use by another `openlookout serve`") from None
        self._file.write(str(os.getpid()))
        self._file.flush()

    def release(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()


class InFlight:
    """WSGI middleware that counts requests until their response is sent, so a stop can wait.

    A request is done when its body has been iterated to the end (or failed, or been closed),
    not when the server's own cleanup after it ends: werkzeug then reads what the client left
    unsent, which waits on a client that keeps its connection open.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self._running: dict[int, str] = {}  # what each request is, for the log at a stop
        self._next = itertools.count()
        self._idle = threading.Condition()

    def __call__(self, environ: WsgiEnviron, start_response: StartResponse) -> Iterable[bytes]:
        token = next(self._next)
        with self._idle:
            self._running[token] = f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}"
        try:
            body = self.app(environ, start_response)
        except BaseException:
            self._done(token)
            raise
        return _Tracked(body, lambda: self._done(token))

    def _done(self, token: int) -> None:
        with self._idle:
            self._running.pop(token, None)
            self._idle.notify_all()

    def wait_idle(self, timeout_s: float) -> list[str]:
        """Waits until no request is in flight or `timeout_s` passes; returns those left."""
        with self._idle:
            self._idle.wait_for(lambda: not self._running, timeout_s)
            return list(self._running.values())


class _Tracked:
    """A response body that reports once it is finished: iterated to its end, failed, or closed."""

    def __init__(self, body: Iterable[bytes], on_done: Callable[[], None]) -> None:
        self.body = body
        self.on_done: Callable[[], None] | None = on_done

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self.body
        finally:
            self._finish()

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self._finish()

    def _finish(self) -> None:
        on_done, self.on_done = self.on_done, None
        if on_done is not None:
            on_done()


class LocalService:
    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        self.data_dir = options.data_dir.resolve()
        self.backends: Backends | None = None
        self.store: S3Store | None = None
        self.server: BaseWSGIServer | None = None
        self.states: Any = None
        self.in_flight: InFlight | None = None
        self._lock: DataDirLock | None = None
        self.endpoint = ""
        self.internal_key = "handlers" + secrets.token_hex(16)  # letters and digits, as DynamoDB Local wants

    def _internal_host(self) -> str:
        # Handlers reach us over loopback whatever we bind to; an IP also makes boto3 use path-style S3.
        return "127.0.0.1" if self.options.host in ("0.0.0.0", "::", "localhost", "") else self.options.host

    def start(self) -> str:
        started = time.monotonic()
        options = self.options
        if not options.allow_remote and not is_loopback(options.host):
            raise RuntimeError(
                f"--host {options.host} would serve every operation and every bucket to the network, "
                "unauthenticated; add --allow-remote if that is what you want"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock = DataDirLock(self.data_dir)
        template = self._load_template()
        # Bind first: the port is then known for the environment, and taken early if busy.
        self.server = make_server(options.host, options.port, self._app_placeholder, threaded=True)
        port = self.server.server_port
        self.endpoint = f"http://{options.host}:{port}"
        self.store = S3Store(self.data_dir / "s3")
        backends = self.backends = choose_backends(
            options.backend, self.data_dir, self.internal_key, LOOPBACK, options.region
        )
        if isinstance(backends, MotoBackends):
            backends.store = self.store  # an older snapshot's buckets move into the store
        registry = self._start_backends(backends, template, f"http://{self._internal_host()}:{port}", started)
        self.states = self._start_state_machines(template, registry)
        router = Router(template.routes(), template.stage_names())
        self.in_flight = InFlight(self._gateway(template, registry, router, backends))
        self.server.app = self.in_flight
        log.info(
            "%d routes, %d functions, %d state machines, backend %s, data in %s (%.1f s)",
            len(router.routes),
            len(registry.names()),
            len(template.state_machines()),
            backends.name,
            self.data_dir,
            time.monotonic() - started,
        )
        return self.endpoint

    def _load_template(self) -> Template:
        options = self.options
        names = LocalNames(
            account_id=options.account_id,
            region=options.region,
            secret=SecretStore(self.data_dir / "secrets.json"),
        )
        template_path = find_template(options.template).resolve()
        return Template(template_path, names, options.parameter_overrides, options.overlays)

    def _start_backends(
        self, backends: Backends, template: Template, internal: str, started: float
    ) -> Functions:
        """Launch the storage backends, import every handler meanwhile, then create tables and buckets."""
        options = self.options
        backends.launch()
        functions = list(template.functions().values())
        self._set_environment(functions, internal)
        registry = Functions(functions, options.region, options.account_id)
        # Import while the JVM starts: import errors show now, not at the first request.
        registry.load_all()
        log.debug("handlers imported after %.2f s", time.monotonic() - started)
        backends.wait_ready()
        log.debug("backends up after %.2f s", time.monotonic() - started)
        created = create_tables(backends, template.tables(), options.region)
        assert self.store is not None
        created += create_buckets(self.store, template.buckets())
        if created:
            log.info("created %s", ", ".join(created))
        return registry

    def _start_state_machines(self, template: Template, registry: Functions) -> StepFunctions:
        from openlookout.local.stepfunctions import StepFunctions

        states = StepFunctions(
            template.state_machines(),
            registry,
            self.data_dir / "stepfunctions",
            self.options.region,
            self.options.account_id,
            max_workers=self.options.max_executions,
        )
        states.recover()  # executions a previous run left unfinished
        return states

    def _gateway(
        self, template: Template, registry: Functions, router: Router, backends: Backends
    ) -> Gateway:
        options = self.options
        assert self.store is not None
        checks = RequestChecks(options.host, self._internal_host())
        dynamodb = StreamingProxy(backends.dynamodb_url, backends.key)
        gateway = Gateway(
            registry,
            router,
            template.binary_media_types(),
            options.account_id,
            LocalS3(self.store),
            checks,
            self.states,
            dynamodb,
        )
        gateway.backend_callers = None if options.debug_backends else {self.internal_key}
        # The console downloads ONNX exports from the artifacts bucket; the endpoint is its own origin.
        gateway.console_config = {"region": options.region}
        if "ArtifactsBucket" in template.resources:
            gateway.console_config["artifactsBucket"] = template.ref("ArtifactsBucket")
        return gateway

    @staticmethod
    def _app_placeholder(environ: WsgiEnviron, start_response: StartResponse) -> Iterable[bytes]:
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
        return [b"starting"]

    def _set_environment(self, functions: list[Any], endpoint: str) -> None:
        """Everything a handler's imports read from os.environ, set before the first import."""
        assert self.backends is not None
        env: dict[str, str] = {}
        for function in functions:
            for key, value in function.environment.items():
                if key in env and env[key] != value:
                    log.warning(
                        "%s differs between functions; all share one process, using %r", key, env[key]
                    )
                    continue
                env[key] = value
        region = self.options.region
        env.update(
            {
                "AWS_REGION": region,
                "AWS_DEFAULT_REGION": region,
                # Dummy credentials: real ones must never reach AWS from a local run. The key is
                # drawn at each start: DynamoDB and the gateway's dynamodb/states routes answer it alone.
                "AWS_ACCESS_KEY_ID": self.internal_key,
                "AWS_SECRET_ACCESS_KEY": DUMMY_KEY,
                "AWS_EC2_METADATA_DISABLED": "true",
                # Every service defaults to this endpoint, so nothing a handler calls reaches AWS.
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ENDPOINT_URL_DYNAMODB": self.backends.dynamodb_url,
                "AWS_ENDPOINT_URL_S3": endpoint,  # presigned URLs a handler makes work for the user
                "AWS_ENDPOINT_URL_SFN": endpoint,  # botocore's variable for the `stepfunctions` client
                "AWS_ENDPOINT_URL_STEPFUNCTIONS": endpoint,
                "POWERTOOLS_TRACE_DISABLED": "true",
                Settings.variable("local"): "1",
                Settings.variable("data_dir"): str(self.data_dir),
            }
        )
        os.environ.pop("AWS_SESSION_TOKEN", None)
        os.environ.pop("AWS_PROFILE", None)
        os.environ.update(env)

    def serve_forever(self) -> None:
        assert self.server is not None
        self.server.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        """Stops accepting, lets in-flight requests finish (a bounded grace), then stops the rest."""
        if self.server is not None:
            with contextlib.suppress(Exception):
                self.server.server_close()  # the listening socket only: open connections go on
        if self.in_flight is not None:
            left = self.in_flight.wait_idle(self.options.shutdown_grace_s)
            if left:
                log.warning(
                    "%d requests still running after %.0f s; cutting them: %s",
                    len(left),
                    self.options.shutdown_grace_s,
                    ", ".join(left),
                )
        if self.states is not None:
            self.states.shutdown()
        if self.backends is not None:
            started = time.monotonic()
            self.backends.stop()
            log.debug("backends stopped in %.2f s", time.monotonic() - started)
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def serve(options: ServeOptions) -> int:
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _raise_interrupt)
    service = LocalService(options)
    code = 0
    try:
        endpoint = service.start()
        print(f"OpenLookout listening on {endpoint}", flush=True)
        service.serve_forever()
    except KeyboardInterrupt:
        pass
    except (OSError, RuntimeError, TimeoutError) as error:  # port in use, data dir locked, a backend down
        log.error("openlookout serve cannot run: %s", error)
        code = 1
    except Exception:
        log.exception("openlookout serve failed")
        code = 1
    finally:
        # A second signal while stopping must not cut the cleanup short.
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        started = time.monotonic()
        service.stop()
        log.info("stopped in %.1f s", time.monotonic() - started)
        logging.shutdown()
    return code


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("botocore").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)


__all__ = ["LocalService", "ServeOptions", "configure_logging", "serve"]
