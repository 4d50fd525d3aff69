"""`openlookout serve`: the API, S3 and Step Functions of template.yaml on one local endpoint."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from openlookout.settings import DEFAULT_REGION


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


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
        help="local: DynamoDB Local (needs java and node_modules); moto: in-process; "
        "auto: local when possible",
    )
    parser.add_argument("--account-id", type=_account_id, default="000000000000")
    parser.add_argument("--region", default=DEFAULT_REGION)
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
