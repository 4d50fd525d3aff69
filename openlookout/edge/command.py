"""The `edge-agent` command's options, importable without grpc or onnxruntime (the CLI builds its
parser at every start)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from openlookout.edge.socket_path import DEFAULT_SOCKET, DEFAULT_SOCKET_MODE, SocketPathError, socket_mode

DESCRIPTION = "Serves the model components under --models over L4V's EdgeAgent gRPC API on a Unix socket."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", type=Path, required=True, help="folder of unpacked model components")
    parser.add_argument(
        "--socket",
        default=DEFAULT_SOCKET,
        help=f"Unix socket path (default {DEFAULT_SOCKET}); a stale socket there is replaced, "
        "anything else (a file, a live agent's socket) is left alone and the agent stops",
    )
    parser.add_argument(
        "--socket-mode",
        type=socket_mode,
        default=DEFAULT_SOCKET_MODE,
        metavar="OCTAL",
        help=f"the socket's permissions (default {DEFAULT_SOCKET_MODE:o}: only this user may connect; "
        "660 lets the group in)",
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
    from openlookout.edge.agent import AgentOptions, run_until_signalled

    options = AgentOptions(
        models_dir=args.models,
        socket=args.socket,
        socket_mode=args.socket_mode,
        start_all=args.start_all,
        providers=args.provider or ["CPUExecutionProvider"],
        workers=args.workers,
        threads=args.threads or None,
    )
    try:
        return run_until_signalled(options)
    except SocketPathError as error:
        print(f"openlookout edge-agent: {error}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="openlookout edge-agent", description=DESCRIPTION)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return int(args.run(args))
