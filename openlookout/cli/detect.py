"""`openlookout detect PROJECT VERSION IMAGE...`: DetectAnomalies on files, as a table or JSON,
and each image with its mask drawn (`--overlay DIR`)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from openlookout.cli.connection import Clients, client_command
from openlookout.cli.output import Column, Table, print_json


def readable_file(text: str) -> Path:
    """An argparse type: a file that can be read (else a usage error naming it)."""
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"{text}: not readable")
    return path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = client_command(
        subparsers,
        "detect",
        "DetectAnomalies on image files (the model must be HOSTED)",
        version="model version",
    )
    parser.add_argument("images", nargs="+", type=readable_file, metavar="IMAGE", help="JPEG or PNG files")
    parser.add_argument(
        "--overlay",
        type=Path,
        metavar="DIR",
        help="also write each image with its mask and classes drawn, to DIR",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the DetectAnomalyResults as one JSON list, each with its Image (the mask PNG is left "
        "out: --overlay draws it)",
    )
    parser.set_defaults(run=detect)


def _content_type(path: Path) -> str:
    return "image/png" if path.suffix.lower() == ".png" else "image/jpeg"


def _short(path: Path) -> str:
    return "/".join(path.parts[-2:])


def _anomalies(result: dict[str, Any]) -> str:
    found = [a for a in result.get("Anomalies", []) if a["Name"] != "background"]
    return ", ".join(f"{a['Name']} {a['PixelAnomaly']['TotalPercentageArea']:.2%}" for a in found)


def _results(args: argparse.Namespace) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Each image's DetectAnomalyResult, as it comes; its overlay written first when asked for."""
    from openlookout.cli.overlay import draw_result, overlay_name
    from openlookout.core.paths import join_under

    lv = Clients.of(args).lookoutvision
    if args.overlay:
        args.overlay.mkdir(parents=True, exist_ok=True)
    for path in args.images:
        data = path.read_bytes()
        result = lv.detect_anomalies(
            ProjectName=args.project, ModelVersion=args.version, Body=data, ContentType=_content_type(path)
        )["DetectAnomalyResult"]
        if args.overlay:
            draw_result(data, result).save(join_under(args.overlay, overlay_name(path)))
        yield path, result


def detect(args: argparse.Namespace) -> int:
    if args.json:
        print_json([{"Image": str(path), **_without_mask(result)} for path, result in _results(args)])
    else:
        columns = Column("image", 32), Column("anomalous", 10), Column("confidence", 10, right=True)
        with Table(*columns, Column("anomalies")) as table:
            for path, result in _results(args):
                table.row(
                    _short(path), result["IsAnomalous"], f"{result['Confidence']:.3f}", _anomalies(result)
                )
    if args.overlay:
        print(f"overlays written to {args.overlay}/", file=sys.stderr if args.json else sys.stdout)
    return 0


def _without_mask(result: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in result.items() if key != "AnomalyMask"}
