"""The `edge-agent` command's options, importable without grpc or onnxruntime (the CLI builds its
parser at every start)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

DEFAULT_SOCKET = "/tmp/aws.iot.lookoutvision.EdgeAgent.sock"  # where L4V's clients look for the agent
DESCRIPTION = "Serves the model components under --models over L4V's EdgeAgent gRPC API on a Unix socket."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", type=Path, required=True, help="folder of unpacked model components")
    parser.add_argument(
        "--socket", default=DEFAULT_SOCKET, help=f"Unix socket path (default {DEFAULT_SOCKET})"
    )
    parser.add_argument(
        "--start-all", action="store_true", help="start every model at once (else StartModel)"
    )
    parser.add_argument(
        "--provider",
        action="append",
        default=[],
        help="onnxruntime execution provider, repeat in order of preference (default CPUExecutionProvider)",
    )
    parser.add_argument("--workers", type=int, default=4, help="requests served at once")
    parser.add_argument(
        "--threads", type=int, default=0, help="onnxruntime threads per model (0: its default)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from openlookout.edge.agent import run_until_signalled

    providers = args.provider or ["CPUExecutionProvider"]
    return run_until_signalled(
        args.models, args.socket, args.start_all, providers, args.workers, args.threads or None
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="openlookout edge-agent", description=DESCRIPTION)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return int(args.run(args))
