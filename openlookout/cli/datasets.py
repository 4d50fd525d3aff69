"""`openlookout datasets list|describe|entries`: a project's datasets, their image counts and entries."""

from __future__ import annotations

import argparse
import json
from typing import Any

from openlookout.cli.connection import Clients, client_command
from openlookout.cli.output import Column, Table, print_json

DATASET_TYPES = ("train", "test")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("datasets", help="look at a project's datasets and their entries")
    commands = parser.add_subparsers(dest="datasets_command", required=True, metavar="COMMAND")
    listing = client_command(commands, "list", "a project's datasets and their status")
    listing.add_argument("--json", action="store_true", help="print DescribeProject's Datasets as JSON")
    listing.set_defaults(run=datasets_list)
    describe = client_command(commands, "describe", "status and image counts (ImageStats) of the datasets")
    describe.add_argument(
        "--type", choices=DATASET_TYPES, action="append", help="one dataset type (default: every one)"
    )
    describe.add_argument("--json", action="store_true", help="print each DatasetDescription as JSON")
    describe.set_defaults(run=datasets_describe)
    _register_entries(commands)


def _register_entries(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    entries = client_command(
        commands, "entries", "the images of a dataset, with their labels (ListDatasetEntries)"
    )
    entries.add_argument("type", choices=DATASET_TYPES, help="dataset type")
    entries.add_argument(
        "--class", dest="anomaly_class", choices=("normal", "anomaly"), help="only this label"
    )
    entries.add_argument(
        "--labeled", choices=("yes", "no"), help="only labeled (yes) or unlabeled (no) images"
    )
    entries.add_argument("--contains", metavar="TEXT", help="only images whose source-ref contains TEXT")
    entries.add_argument("--json", action="store_true", help="print each entry's JSON line (a manifest)")
    entries.set_defaults(run=datasets_entries)


def datasets_list(args: argparse.Namespace) -> int:
    lv = Clients.of(args).lookoutvision
    datasets = lv.describe_project(ProjectName=args.project)["ProjectDescription"]["Datasets"]
    if args.json:
        print_json(datasets)
        return 0
    with Table(Column("type", 6), Column("status", 32), Column("message")) as table:
        for dataset in datasets:
            table.row(dataset["DatasetType"], dataset["Status"], dataset.get("StatusMessage"))
    return 0


def datasets_describe(args: argparse.Namespace) -> int:
    lv = Clients.of(args).lookoutvision
    types = args.type or [
        d["DatasetType"]
        for d in lv.describe_project(ProjectName=args.project)["ProjectDescription"]["Datasets"]
    ]
    found = [
        lv.describe_dataset(ProjectName=args.project, DatasetType=kind)["DatasetDescription"]
        for kind in types
    ]
    if args.json:
        print_json(found)
        return 0
    numbers = [Column(title, 8, right=True) for title in ("total", "labeled", "normal", "anomaly")]
    with Table(Column("type", 6), Column("status", 32), *numbers) as table:
        for dataset in found:
            stats = dataset.get("ImageStats", {})
            counts = [stats.get(key, 0) for key in ("Total", "Labeled", "Normal", "Anomaly")]
            table.row(dataset["DatasetType"], dataset["Status"], *counts)
    return 0


def _entry_filters(args: argparse.Namespace) -> dict[str, Any]:
    filters: dict[str, Any] = {}
    if args.anomaly_class:
        filters["AnomalyClass"] = args.anomaly_class
    if args.labeled:
        filters["Labeled"] = args.labeled == "yes"
    if args.contains:
        filters["SourceRefContains"] = args.contains
    return filters


def _label(entry: dict[str, Any]) -> str | None:
    """The entry's class name from its label metadata (the attribute's name is the job's own)."""
    for key, value in entry.items():
        if (
            key.endswith("-metadata")
            and isinstance(value, dict)
            and value.get("class-name") in ("normal", "anomaly")
        ):
            return str(value["class-name"])
    return None


def datasets_entries(args: argparse.Namespace) -> int:
    lv = Clients.of(args).lookoutvision
    pages = lv.get_paginator("list_dataset_entries").paginate(
        ProjectName=args.project, DatasetType=args.type, **_entry_filters(args)
    )
    lines = (line for page in pages for line in page["DatasetEntries"])
    if args.json:  # JSON lines, as in a manifest
        for line in lines:
            print(line)
        return 0
    with Table(Column("label", 8), Column("mask", 4), Column("image")) as table:
        for line in lines:
            entry = json.loads(line)
            table.row(_label(entry), "yes" if "anomaly-mask-ref" in entry else "no", entry["source-ref"])
    return 0
