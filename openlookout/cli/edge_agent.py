"""`openlookout edge-agent`: the edge agent of a packaged model (openlookout/edge), on a device."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from openlookout.edge.command import DESCRIPTION, add_arguments

    parser = subparsers.add_parser(
        "edge-agent",
        help="serve models over L4V's EdgeAgent gRPC API on a Unix socket",
        description=DESCRIPTION,
    )
    add_arguments(parser)
