"""`openlookout models list|describe|wait`, and `train`, `start` and `stop`: a model's life."""

from __future__ import annotations

import argparse
from typing import Any

from openlookout.cli.connection import Clients, client_command
from openlookout.cli.output import Column, Table, print_json
from openlookout.cli.progress import StatusLine, status_printer


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("models", help="list, describe and wait for models")
    commands = parser.add_subparsers(dest="models_command", required=True, metavar="COMMAND")
    listing = client_command(commands, "list", "a project's model versions")
    listing.add_argument("--json", action="store_true", help="print ListModels' Models as JSON")
    listing.set_defaults(run=models_list)
    describe = client_command(commands, "describe", "one model (DescribeModel)", version="model version")
    describe.add_argument("--json", action="store_true", help="print the ModelDescription as JSON")
    describe.set_defaults(run=models_describe)
    wait = client_command(
        commands,
        "wait",
        "wait until training, starting or stopping ends, showing progress",
        version="model version",
    )
    wait.set_defaults(run=models_wait)
    _register_lifecycle(subparsers)


def _register_lifecycle(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    train = client_command(subparsers, "train", "CreateModel: train a new model version of a project")
    train.add_argument(
        "--output",
        type=s3_location,
        required=True,
        metavar="s3://BUCKET/PREFIX/",
        help="where the evaluation files and report go (CreateModel's OutputConfig)",
    )
    train.add_argument("--description", help="model description")
    train.add_argument(
        "--wait", action="store_true", help="wait for the end of training, with a progress bar"
    )
    train.set_defaults(run=train_model)
    start = client_command(subparsers, "start", "StartModel: host a trained model", version="model version")
    start.add_argument("--units", type=int, default=1, help="MinInferenceUnits (default 1)")
    start.add_argument("--wait", action="store_true", help="wait until HOSTED")
    start.set_defaults(run=start_model)
    stop = client_command(subparsers, "stop", "StopModel: stop hosting a model", version="model version")
    stop.add_argument("--wait", action="store_true", help="wait until TRAINED again")
    stop.set_defaults(run=stop_model)


def s3_location(text: str) -> tuple[str, str]:
    if not text.startswith("s3://") or len(text) <= 5 or text[5] == "/":
        raise argparse.ArgumentTypeError(f"expected s3://bucket/prefix/, got {text!r}")
    bucket, _, prefix = text[5:].partition("/")
    return bucket, prefix


def _performance(model: dict[str, Any]) -> str:
    performance = model.get("Performance") or {}
    return ", ".join(f"{key} {value:.3f}" for key, value in performance.items() if value is not None)


def summary(model: dict[str, Any]) -> str:
    """model 1: TRAINED (F1Score 1.000, Recall 1.000, Precision 1.000)"""
    figures = _performance(model)
    return f"model {model['ModelVersion']}: {model['Status']}" + (f" ({figures})" if figures else "")


def wait_with_progress(lv: Any, project: str, version: str) -> dict[str, Any]:
    """Waits for the model's transition to end, showing each status; raises WaitError on failure."""
    from openlookout.client import wait_for_model

    line = StatusLine()
    try:
        return wait_for_model(lv, project, version, on_change=status_printer(line))
    finally:
        line.done()


def models_list(args: argparse.Namespace) -> int:
    lv = Clients.of(args).lookoutvision
    pages = lv.get_paginator("list_models").paginate(ProjectName=args.project)
    models = [model for page in pages for model in page["Models"]]
    if args.json:
        print_json(models)
        return 0
    with Table(
        Column("version", 8), Column("status", 18), Column("F1", 6, right=True), Column("message")
    ) as table:
        for model in models:
            f1 = (model.get("Performance") or {}).get("F1Score")
            table.row(
                model["ModelVersion"],
                model["Status"],
                None if f1 is None else f"{f1:.3f}",
                model.get("StatusMessage"),
            )
    return 0


def models_describe(args: argparse.Namespace) -> int:
    lv = Clients.of(args).lookoutvision
    model = lv.describe_model(ProjectName=args.project, ModelVersion=args.version)["ModelDescription"]
    if args.json:
        print_json(model)
        return 0
    output = model.get("OutputConfig", {}).get("S3Location", {})
    evaluation = model.get("EvaluationResult")
    with Table(Column("field", 20), Column("value")) as table:
        table.row("ModelVersion", model["ModelVersion"])
        table.row("Status", model["Status"])
        table.row("StatusMessage", model.get("StatusMessage"))
        table.row("Performance", _performance(model))
        table.row("CreationTimestamp", f"{model['CreationTimestamp']:%Y-%m-%d %H:%M:%S}")
        table.row("Output", f"s3://{output.get('Bucket')}/{output.get('Prefix', '')}" if output else None)
        table.row(
            "EvaluationResult", f"s3://{evaluation['Bucket']}/{evaluation['Key']}" if evaluation else None
        )
        table.row("ModelArn", model["ModelArn"])
    return 0


def models_wait(args: argparse.Namespace) -> int:
    print(summary(wait_with_progress(Clients.of(args).lookoutvision, args.project, args.version)))
    return 0


def train_model(args: argparse.Namespace) -> int:
    lv = Clients.of(args).lookoutvision
    bucket, prefix = args.output
    extra = {"Description": args.description} if args.description else {}
    created = lv.create_model(
        ProjectName=args.project, OutputConfig={"S3Location": {"Bucket": bucket, "Prefix": prefix}}, **extra
    )["ModelMetadata"]
    print(f"model {created['ModelVersion']}: {created['Status']}", flush=True)
    if args.wait:
        print(summary(wait_with_progress(lv, args.project, created["ModelVersion"])))
    return 0


def _host(args: argparse.Namespace, started: dict[str, Any]) -> int:
    print(f"model {args.version}: {started['Status']}", flush=True)
    if args.wait:
        print(summary(wait_with_progress(Clients.of(args).lookoutvision, args.project, args.version)))
    return 0


def start_model(args: argparse.Namespace) -> int:
    lv = Clients.of(args).lookoutvision
    return _host(
        args,
        lv.start_model(ProjectName=args.project, ModelVersion=args.version, MinInferenceUnits=args.units),
    )


def stop_model(args: argparse.Namespace) -> int:
    lv = Clients.of(args).lookoutvision
    return _host(args, lv.stop_model(ProjectName=args.project, ModelVersion=args.version))
