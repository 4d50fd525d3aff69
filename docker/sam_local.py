"""`make sam-local`: the template in Lambda containers with the SAM CLI, behind one local endpoint.

- `sam local start-api` runs the API Gateway routes, each in its function's Lambda container;
- `sam local start-lambda` runs the state machines' tasks (and the EventBridge-triggered recovery
  function) in Lambda containers: the project's Step Functions interpreter (openlookout.local)
  calls it as its Lambda service;
- DynamoDB Local and the local S3 store of `openlookout serve` keep the tables and buckets under
  --data-dir;
- one endpoint on 127.0.0.1:--port routes each signed request by its SigV4 service, as
  `openlookout serve` does: `s3` to the S3 store, anything else to `sam local start-api`, with the
  same checks (a SigV4-signed request, a Host of its own, no other origin, no form posts). The same
  boto3 snippets therefore run against either.

The containers reach DynamoDB, S3 and Step Functions through a second listener of that endpoint on
the Docker bridge's host address (containers cannot reach the host's loopback). It exists only
while this command runs, and its `dynamodb` and `states` APIs answer only the functions' own
access key, drawn at each start. Nothing listens on any other address.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from types import FrameType
from typing import IO, Any

import boto3
import yaml
from botocore.config import Config
from werkzeug.serving import BaseWSGIServer, make_server

from openlookout.local.backends import (
    DUMMY_KEY,
    Backends,
    choose_backends,
    create_buckets,
    create_tables,
    die_with_parent,
    wait_until_http,
)
from openlookout.local.backends import free_port as loopback_port
from openlookout.local.gateway import answer_refusal, no_sniffing
from openlookout.local.lambdas import FunctionError, FunctionNotFound
from openlookout.local.proxies import StreamingProxy
from openlookout.local.request_checks import RequestChecks
from openlookout.local.s3_api import LocalS3
from openlookout.local.s3_store import S3Store
from openlookout.local.stepfunctions import StepFunctions
from openlookout.local.template import Function, LocalNames, SecretStore, Template
from openlookout.local.wsgi import (
    StartResponse,
    WsgiEnviron,
    access_key,
    json_error,
    raw_path,
    read_body,
    signed_service,
)
from openlookout.settings import DEFAULT_REGION, Settings

log = logging.getLogger("sam-local")

ROOT = Path(__file__).resolve().parents[1]
BUILD_DIR = ROOT / ".aws-sam" / "build"
READY_LINE = "OpenLookout (sam local) listening on "
TRAINING_FUNCTION = "TrainModelFunction"
TRAINING_IMAGE = os.environ.get("TRAIN_IMAGE", "openlookout-train:cpu")  # docker/training-image.sh
# What every container gets beside the template's own variables: AWS stays out of reach.
ENDPOINT_VARIABLES = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_SFN",  # botocore's variable for the `stepfunctions` client
    "AWS_ENDPOINT_URL_STEPFUNCTIONS",
)
FIXED_VARIABLES = {
    "AWS_EC2_METADATA_DISABLED": "true",
    "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon
    Settings.variable("local"): "1",  # edge components go to the artifacts bucket, not to Greengrass
}


# ---------------------------------------------------------------- Lambda through start-lambda


def function_name(name_or_arn: str) -> str:
    """The function's name in an ARN (arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>])."""
    if name_or_arn.startswith("arn:"):
        parts = name_or_arn.split(":")
        return parts[6] if len(parts) > 6 else parts[-1]
    return name_or_arn.split(":", 1)[0]


class ContainerFunctions:
    """The template's functions as `sam local start-lambda` runs them, with the interface the local
    Step Functions calls (openlookout.local.lambdas.Functions)."""

    def __init__(self, functions: Iterable[Function], endpoint: str, region: str, key: str) -> None:
        self._specs = {f.logical_id: f for f in functions}
        self._client = boto3.client(
            "lambda",
            endpoint_url=endpoint,
            region_name=region,
            aws_access_key_id=key,
            aws_secret_access_key=DUMMY_KEY,
            # Training runs up to its 900 s timeout; a retry would run a task twice.
            config=Config(read_timeout=960, connect_timeout=10, retries={"max_attempts": 0}),
        )

    def specs(self) -> list[Function]:
        return list(self._specs.values())

    def invoke(self, name_or_arn: str, event: Any) -> Any:
        name = function_name(name_or_arn)
        if name not in self._specs:
            raise FunctionNotFound(name_or_arn)
        response = self._client.invoke(FunctionName=name, Payload=json.dumps(event).encode())
        raw = response["Payload"].read()
        payload = json.loads(raw) if raw else None
        if response.get("FunctionError"):
            error = payload if isinstance(payload, dict) else {}
            raise FunctionError(
                str(error.get("errorType", "Unhandled")),
                str(error.get("errorMessage", raw.decode(errors="replace"))),
                list(error.get("stackTrace") or []),
            )
        return payload


# ---------------------------------------------------------------- the one endpoint


class ApiProxy(StreamingProxy):
    """To `sam local start-api`, with two of its differences from API Gateway evened out:

    - each `%` of the path is escaped once more: its server decodes the path before routing, so an
      ARN's `%2F` (TagResource) would split the segment. Decoded once, the path is what the client
      sent, and the handler gets `pathParameters` still percent-encoded, as API Gateway gives them;
    - a body whose Content-Type is not one of the API's binary media types goes on as text, as API
      Gateway passes it (bytes that are not UTF-8 replaced): start-api answers 502 to it instead,
      so DetectAnomalies with `image/gif` would never reach the handler's ValidationException.
    """

    def __init__(self, backend_url: str, binary_types: list[str]) -> None:
        super().__init__(backend_url, access_key="")
        self.binary_types = {t.lower() for t in binary_types}

    def header(self, name: str, value: str) -> str:
        return value  # start-api checks no signature: the caller's goes on as it came

    def target(self, environ: WsgiEnviron) -> str:
        query = environ.get("QUERY_STRING", "")
        return raw_path(environ).replace("%", "%25") + ("?" + query if query else "")

    def __call__(self, environ: WsgiEnviron, start_response: StartResponse) -> Iterable[bytes]:
        media_type = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        if media_type and media_type not in self.binary_types:
            text = read_body(environ).decode("utf-8", errors="replace").encode()
            environ["wsgi.input"] = io.BytesIO(text)
            environ["CONTENT_LENGTH"] = str(len(text))
        return super().__call__(environ, start_response)


class FrontDoor:
    """Routes by the SigV4 service: `s3` to the S3 store, `dynamodb` and `states` (the functions'
    key only) to DynamoDB Local and the local Step Functions, the rest to `sam local start-api`;
    after `openlookout serve`'s own checks of who may call (openlookout.local.request_checks)."""

    def __init__(
        self,
        checks: RequestChecks,
        s3: LocalS3,
        dynamodb: StreamingProxy,
        states: StepFunctions,
        api: ApiProxy,
        key: str,
    ) -> None:
        self.checks, self.s3, self.dynamodb, self.states, self.api = checks, s3, dynamodb, states, api
        self.key = key

    def __call__(self, environ: WsgiEnviron, start_response: StartResponse) -> Iterable[bytes]:
        service = signed_service(environ)
        start_response = no_sniffing(start_response)
        refusal = self.checks.refusal(environ, service, console=False)
        if refusal is not None:
            return answer_refusal(environ, start_response, refusal, xml=service == "s3")
        try:
            if service == "s3":
                return self.s3(environ, start_response)
            if service in ("dynamodb", "states"):
                if access_key(environ) != self.key:
                    return json_error(
                        start_response,
                        403,
                        "AccessDeniedException",
                        f"The {service} API of `make sam-local` answers only the Lambda functions.",
                    )
                return (
                    self.dynamodb(environ, start_response)
                    if service == "dynamodb"
                    else self.states(environ, start_response)
                )
            return self.api(environ, start_response)
        except ConnectionError as error:
            log.error("backend unreachable: %s", error)
            return json_error(start_response, 503, "ServiceUnavailableException", str(error))


# ---------------------------------------------------------------- SAM's inputs


def bridge_address() -> str:
    """The host's address on Docker's default bridge: what containers reach the host by."""
    output = subprocess.run(
        ["docker", "network", "inspect", "bridge", "--format", "{{json .IPAM.Config}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    config = (json.loads(output) or [{}])[0]
    if config.get("Gateway"):
        return str(config["Gateway"])
    network = config["Subnet"].split("/")[0].rsplit(".", 1)[0]
    return f"{network}.1"  # dockerd gives the bridge the subnet's first address


def write_template(built: Path, target: Path) -> None:
    """The built template, with the extra variables declared (SAM passes a container only the
    variables its template declares) and the training function on the locally built image."""
    document = yaml.safe_load(built.read_text())
    variables = document["Globals"]["Function"].setdefault("Environment", {}).setdefault("Variables", {})
    for name in (*ENDPOINT_VARIABLES, *FIXED_VARIABLES):
        variables.setdefault(name, "")
    training = document["Resources"].get(TRAINING_FUNCTION)
    if training is not None:
        training["Properties"]["ImageUri"] = TRAINING_IMAGE
        training.pop("Metadata", None)
    target.write_text(yaml.safe_dump(document, sort_keys=False))


def environment_file(functions: Iterable[Function], endpoint: str, target: Path) -> None:
    """`--env-vars`: each function's variables as the template resolves them locally."""
    extra = {name: endpoint for name in ENDPOINT_VARIABLES} | FIXED_VARIABLES
    values = {f.logical_id: {**f.environment, **extra} for f in functions}
    target.write_text(json.dumps(values, indent=1))


class SamProcess:
    """One `sam local` command in its own process group, logged to a file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = args[1]
        self._log: IO[bytes] = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            ["sam", "local", *args],
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """SIGINT first: SAM removes its warm containers on a Ctrl-C."""
        for signum, wait_s in ((signal.SIGINT, 30.0), (signal.SIGKILL, 5.0)):
            if self.process.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(wait_s)
        self._log.close()


# ---------------------------------------------------------------- the whole


class SamLocal:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.data_dir: Path = args.data_dir.resolve()
        self.key = "samlocal" + secrets.token_hex(12)  # letters and digits, as DynamoDB Local wants
        self.backends: Backends | None = None
        self.states: StepFunctions | None = None
        self.servers: list[BaseWSGIServer] = []
        self.sam: list[SamProcess] = []
        self.endpoint = ""

    def start(self) -> str:
        started = time.monotonic()
        args = self.args
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        names = LocalNames(region=args.region, secret=SecretStore(self.data_dir / "secrets.json"))
        template = Template(args.template.resolve(), names)
        functions = list(template.functions().values())
        backends = self.backends = choose_backends("local", self.data_dir, self.key, "127.0.0.1", args.region)
        backends.start()
        create_tables(backends, template.tables(), args.region)
        store = S3Store(self.data_dir / "s3")
        create_buckets(store, template.buckets())
        # Bind both listeners first: the containers' endpoint goes into SAM's inputs.
        api_port, lambda_port = loopback_port(), loopback_port()
        bridge = bridge_address()
        user_server = make_server("127.0.0.1", args.port, self._placeholder, threaded=True)
        try:
            container_server = make_server(bridge, 0, self._placeholder, threaded=True)
        except OSError as error:
            raise RuntimeError(
                f"cannot listen on the Docker bridge's address {bridge} ({error}): is its interface "
                "gone? Restart the daemon: make docker-stop docker"
            ) from error
        self.servers = [user_server, container_server]
        inside = f"http://{bridge}:{container_server.server_port}"
        self._start_sam(functions, inside, api_port, lambda_port)
        lambdas = ContainerFunctions(functions, f"http://127.0.0.1:{lambda_port}", args.region, self.key)
        self.states = StepFunctions(
            template.state_machines(),
            lambdas,  # type: ignore[arg-type]  # the interface of local.lambdas.Functions it calls
            self.data_dir / "stepfunctions",
            args.region,
            names.account_id,
        )
        self.states.recover()
        app = FrontDoor(
            RequestChecks("127.0.0.1", bridge),
            LocalS3(store),
            StreamingProxy(backends.dynamodb_url, backends.key),
            self.states,
            ApiProxy(f"http://127.0.0.1:{api_port}", template.binary_media_types()),
            self.key,
        )
        for server in self.servers:
            server.app = app
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
        for process, port in zip(self.sam, (api_port, lambda_port), strict=True):
            wait_until_http(f"http://127.0.0.1:{port}/", args.start_timeout, process.running)
        self.endpoint = f"http://127.0.0.1:{user_server.server_port}"
        log.info("containers call %s; ready after %.1f s", inside, time.monotonic() - started)
        return self.endpoint

    def _start_sam(self, functions: list[Function], inside: str, api_port: int, lambda_port: int) -> None:
        template = BUILD_DIR / "sam-local.yaml"
        write_template(self.args.built_template.resolve(), template)
        env_file = self.data_dir / "env.json"
        environment_file(functions, inside, env_file)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        # What SAM hands the containers as their credentials: the key the front door trusts.
        env |= {
            "AWS_ACCESS_KEY_ID": self.key,
            "AWS_SECRET_ACCESS_KEY": DUMMY_KEY,
            "AWS_DEFAULT_REGION": self.args.region,
            "AWS_REGION": self.args.region,
            "SAM_CLI_TELEMETRY": "0",
        }
        common = ["--template", str(template), "--env-vars", str(env_file), "--skip-pull-image"]
        common += ["--warm-containers", "LAZY", "--host", "127.0.0.1"]
        logs = self.data_dir / "logs"
        self.sam = [
            SamProcess(["start-api", "--port", str(api_port), *common], env, logs / "start-api.log"),
            SamProcess(["start-lambda", "--port", str(lambda_port), *common], env, logs / "start-lambda.log"),
        ]

    @staticmethod
    def _placeholder(environ: WsgiEnviron, start_response: StartResponse) -> list[bytes]:
        return json_error(start_response, 503, "ServiceUnavailableException", "starting")

    def stop(self) -> None:
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.shutdown()
                server.server_close()
        if self.states is not None:
            self.states.shutdown()
        for process in self.sam:
            process.stop()
        remove_containers(self.key)
        if self.backends is not None:
            self.backends.stop()


def remove_containers(key: str) -> None:
    """The Lambda containers SAM left running (a warm container it was still starting when stopped):
    those whose credentials are this run's key, so no other SAM session's are touched."""
    listed = subprocess.run(
        ["docker", "ps", "-aq", "--filter", "label=sam.cli.container.type=lambda"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    ours = []
    for container in listed:
        environment = subprocess.run(
            ["docker", "inspect", "-f", "{{json .Config.Env}}", container],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        if f"AWS_ACCESS_KEY_ID={key}" in environment:
            ours.append(container)
    if ours:
        log.info("removing %d Lambda containers SAM left", len(ours))
        subprocess.run(["docker", "rm", "-f", *ours], capture_output=True, check=False)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=3000, help="the endpoint's port on 127.0.0.1")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".sam-local")
    parser.add_argument("--template", type=Path, default=ROOT / "template.yaml")
    parser.add_argument("--built-template", type=Path, default=BUILD_DIR / "template.yaml")
    parser.add_argument("--region", default=DEFAULT_REGION)
    parser.add_argument("--start-timeout", type=float, default=180.0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _raise_interrupt)
    service = SamLocal(parse_args(argv))
    code = 0
    try:
        print(READY_LINE + service.start(), flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    except (OSError, RuntimeError, subprocess.CalledProcessError) as error:
        log.error("sam-local cannot run: %s", error)
        code = 1
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        service.stop()
    return code


if __name__ == "__main__":
    sys.exit(main())
