"""The `openlookout` parser: one subcommand (or group) per module, each with `register(subparsers)`.

Adding a command is a module with `register` and a `run` set as the parser's default, plus one line
in COMMANDS. `main` runs it through `output.run_command`: one-line errors, exit codes 1 and 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import cast

from openlookout.cli import datasets, detect, edge_agent, export, manifest, models, projects, report, serve
from openlookout.cli.output import Parser, run_command

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

COMMANDS: list[Register] = [
    serve.register,
    manifest.register,
    edge_agent.register,
    projects.register,
    datasets.register,
    models.register,  # models list|describe|wait, train, start, stop
    detect.register,
    export.register,
    report.register,
]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="openlookout",
        description="OpenLookout command line: run the service, and work with it like any L4V client "
        "(--endpoint-url or AWS_ENDPOINT_URL). `openlookout COMMAND --help` says more.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    # Subparsers are Parsers too (one-line usage errors); each register() needs only ArgumentParser.
    subparsers = cast(
        "argparse._SubParsersAction[argparse.ArgumentParser]",
        parser.add_subparsers(dest="command", required=True, metavar="COMMAND"),
    )
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
    args = build_parser().parse_args(argv)
    return int(run_command(args.run, args) or 0)


if __name__ == "__main__":
    sys.exit(main())
