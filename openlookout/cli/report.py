"""`openlookout report PROJECT VERSION DIR`: the evaluation report training wrote beside the model's
EvaluationResult (index.html with metrics, curves, score histograms and every test image)."""

from __future__ import annotations

import argparse
from pathlib import Path

from openlookout.cli.connection import Clients, client_command
from openlookout.cli.output import CommandError, report_error
from openlookout.core.paths import UnsafePath, join_under


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = client_command(
        subparsers,
        "report",
        "download a model's evaluation report (index.html, curves, overlays)",
        version="model version",
    )
    report.add_argument("directory", type=Path, metavar="DIR", help="where to write the report")
    report.set_defaults(run=download_report)


def report_prefix(evaluation_result_key: str) -> str:
    """The report folder beside EvaluationResult-<project>-<version>.json (see workflows/training.py)."""
    folder, _, name = evaluation_result_key.rpartition("/")
    stem = name.removesuffix(".json").replace("EvaluationResult-", "EvaluationReport-", 1)
    return f"{folder}/{stem}/" if folder else f"{stem}/"


def targets_under(directory: Path, names: dict[str, str]) -> dict[str, Path]:
    """Where each key's file goes under DIR; a key whose name would land outside DIR (someone else may
    write to the bucket: `../`, absolute, backslashes, empty segments) is skipped with a warning."""
    targets = {}
    for key, name in names.items():
        try:
            targets[key] = join_under(directory, name)
        except UnsafePath as error:
            report_error(f"skipped {error}")
    return targets


def download_report(args: argparse.Namespace) -> int:
    clients = Clients.of(args)
    model = clients.lookoutvision.describe_model(ProjectName=args.project, ModelVersion=args.version)[
        "ModelDescription"
    ]
    location = model.get("EvaluationResult")
    if not location:
        raise CommandError(f"model {model['ModelVersion']} has no evaluation yet ({model['Status']})")
    bucket, prefix = location["Bucket"], report_prefix(location["Key"])
    pages = clients.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    if not keys:
        raise CommandError(f"nothing under s3://{bucket}/{prefix}")
    targets = targets_under(args.directory, {key: key[len(prefix) :] for key in keys})  # all checked first
    for key, target in targets.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        clients.s3.download_file(bucket, key, str(target))
    print(f"{len(targets)} files from s3://{bucket}/{prefix} in {args.directory}/")
    entry = args.directory / "index.html"
    if entry.exists():
        print(f"open {entry}")
    return 0
