"""The `openlookout` command. Each subcommand is a module-level `register(subparsers)` here, so
adding one (e.g. `openlookout manifest ...`) is one function plus one line in COMMANDS."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def _parameter(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected Name=Value, got {text!r}")
    return key, value


def _account_id(text: str) -> str:
    # ARNs carry it, and the service refuses to start with another shape (openlookout.settings).
    if not (len(text) == 12 and text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"an AWS account id is 12 digits, got {text!r}")
    return text


def register_serve(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the API, S3 and Step Functions of template.yaml locally on one endpoint",
        description="Runs the handlers of template.yaml in-process behind one local endpoint that "
        "answers the lookoutvision, s3 and stepfunctions clients. Data lives in --data-dir.",
    )
    _add_serve_resources(parser)
    _add_serve_limits(parser)
    parser.set_defaults(run=run_serve)


def _add_serve_resources(parser: argparse.ArgumentParser) -> None:
    """Where the service listens, what it runs and where it keeps its data."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=3000, help="port (0 picks a free one; default 3000)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".openlookout"),
        help="where everything is kept (./.openlookout)",
    )
    parser.add_argument(
        "--template",
        type=Path,
        action="append",
        default=[],
        help="SAM template (default ./template.yaml); repeat to add overlay templates whose resources "
        "are added to the first one's (e.g. test-only functions and state machines)",
    )
    parser.add_argument(
        "--backend",
        choices=("auto", "local", "moto"),
        default="auto",
        help="local: DynamoDB Local + s3rver (needs java, node, node_modules); moto: in-process; "
        "auto: local when possible",
    )
    parser.add_argument("--account-id", type=_account_id, default="000000000000")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument(
        "--parameter",
        type=_parameter,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a template parameter's Default (repeatable)",
    )


def _add_serve_limits(parser: argparse.ArgumentParser) -> None:
    """Who may reach the service, and how it runs and stops."""
    parser.add_argument("--max-executions", type=int, default=8, help="state machine executions run at once")
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host other than loopback: anyone who reaches it can call every operation "
        "and read or write every bucket, with no authentication",
    )
    parser.add_argument(
        "--debug-backends",
        action="store_true",
        help="let any client call the dynamodb and stepfunctions APIs through the endpoint "
        "(by default only the service's own handlers can)",
    )
    parser.add_argument(
        "--shutdown-grace",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, how long in-flight requests may take to finish (default 10)",
    )
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))


def run_serve(args: argparse.Namespace) -> int:
    from openlookout.local.server import ServeOptions, configure_logging, serve

    configure_logging(args.log_level)
    options = ServeOptions(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        template=args.template[0] if args.template else None,
        overlays=args.template[1:],
        backend=args.backend,
        account_id=args.account_id,
        region=args.region,
        parameter_overrides=dict(args.parameter),
        max_executions=args.max_executions,
        allow_remote=args.allow_remote,
        debug_backends=args.debug_backends,
        shutdown_grace_s=args.shutdown_grace,
    )
    code = serve(options)
    # Everything is stopped and flushed; skip the interpreter's slow teardown of ~100 imported modules.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def register_manifest(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from openlookout.tools.manifest_from_folder import register

    register(subparsers)


def register_edge_agent(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "edge-agent", help="serve models over L4V's EdgeAgent gRPC API on a Unix socket"
    )
    from openlookout.edge.command import add_arguments

    add_arguments(parser)


def _client_commands() -> list[Register]:
    from openlookout.commands import CLIENT_COMMANDS

    return list(CLIENT_COMMANDS)


COMMANDS: list[Register] = [register_serve, register_manifest, register_edge_agent, *_client_commands()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="openlookout",
        description="OpenLookout command line: run the service, and work with it like any L4V client "
        "(--endpoint-url or AWS_ENDPOINT_URL). `openlookout COMMAND --help` says more.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in COMMANDS:
        register(subparsers)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("openlookout")
    except PackageNotFoundError:
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    from openlookout.commands import run_with_errors

    args = build_parser().parse_args(argv)
    return int(run_with_errors(args.run, args) or 0)


if __name__ == "__main__":
    sys.exit(main())
