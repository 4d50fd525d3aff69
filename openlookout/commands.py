"""The `openlookout` client commands: daily work with projects, datasets and models.

They talk to the service only through the Lookout for Vision API and S3, like any boto3 client,
so they work against `openlookout serve` and a deployed stack alike (`--endpoint-url` or
`AWS_ENDPOINT_URL`; credentials and region from the usual boto3 chain, with dummy ones filled in
for a loopback endpoint). Each command is one `register_*` function listed in CLIENT_COMMANDS.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from openlookout.settings import client_settings

LOOPBACK_PREFIXES = ("http://127.0.0.1", "http://localhost", "http://[::1]")
DEFAULT_REGION = "us-east-1"


def _common() -> argparse.ArgumentParser:
    """Options every client command takes."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--endpoint-url",
        default=client_settings().endpoint_url,
        help="the service's endpoint (default: $AWS_ENDPOINT_URL; unset means AWS itself)",
    )
    common.add_argument(
        "--region", default=None, help="AWS region (default: the boto3 chain, else us-east-1)"
    )
    return common


class Clients:
    """The lookoutvision and s3 clients of one command run."""

    def __init__(self, endpoint_url: str | None, region: str | None) -> None:
        import boto3

        from openlookout.client import use_api_gateway_signing

        session = boto3.session.Session()
        region = region or session.region_name or DEFAULT_REGION
        local = bool(endpoint_url and endpoint_url.startswith(LOOPBACK_PREFIXES))
        # Keys are never checked locally, but botocore will not send a request without some.
        key = "local" if local and session.get_credentials() is None else None
        # boto3's type stubs have no lookoutvision (botocore dropped its model; see README).
        lookoutvision: Any = session.client(  # type: ignore[call-overload]
            "lookoutvision",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=key,
            aws_secret_access_key=key,
        )
        if endpoint_url and ".execute-api." in endpoint_url:
            use_api_gateway_signing(lookoutvision)
        self.lookoutvision = lookoutvision
        # A deployed stack keeps its data in AWS's own S3; locally S3 is on the same endpoint.
        self.s3: Any = session.client(
            "s3",
            endpoint_url=endpoint_url if local else None,
            region_name=region,
            aws_access_key_id=key,
            aws_secret_access_key=key,
        )


def _clients(args: argparse.Namespace) -> Clients:
    return Clients(args.endpoint_url, args.region)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


# ------------------------------------------------------------------ projects


def register_projects(subparsers: Any) -> None:
    parser = subparsers.add_parser("projects", help="list, create and delete projects")
    commands = parser.add_subparsers(dest="projects_command", required=True, metavar="COMMAND")
    listing = commands.add_parser("list", parents=[_common()], help="list the projects")
    listing.set_defaults(run=projects_list)
    create = commands.add_parser("create", parents=[_common()], help="create a project")
    create.add_argument("project", help="project name")
    create.set_defaults(run=projects_create)
    delete = commands.add_parser(
        "delete", parents=[_common()], help="delete a project (no datasets or models left)"
    )
    delete.add_argument("project", help="project name")
    delete.set_defaults(run=projects_delete)


def projects_list(args: argparse.Namespace) -> int:
    lv = _clients(args).lookoutvision
    for page in lv.get_paginator("list_projects").paginate():
        for project in page["Projects"]:
            print(f"{project['ProjectName']}\t{project['CreationTimestamp']:%Y-%m-%d %H:%M:%S}")
    return 0


def projects_create(args: argparse.Namespace) -> int:
    answer = _clients(args).lookoutvision.create_project(ProjectName=args.project)
    print(answer["ProjectMetadata"]["ProjectArn"])
    return 0


def projects_delete(args: argparse.Namespace) -> int:
    answer = _clients(args).lookoutvision.delete_project(ProjectName=args.project)
    print(f"deleted {answer['ProjectArn']}")
    return 0


# ------------------------------------------------------------------ datasets


def register_datasets(subparsers: Any) -> None:
    parser = subparsers.add_parser("datasets", help="look at a project's datasets")
    commands = parser.add_subparsers(dest="datasets_command", required=True, metavar="COMMAND")
    describe = commands.add_parser(
        "describe", parents=[_common()], help="status and image counts (ImageStats) of the datasets"
    )
    describe.add_argument("project", help="project name")
    describe.add_argument(
        "--type", choices=("train", "test"), action="append", help="one dataset type (default: every one)"
    )
    describe.set_defaults(run=datasets_describe)


def datasets_describe(args: argparse.Namespace) -> int:
    lv = _clients(args).lookoutvision
    types = args.type or [
        d["DatasetType"]
        for d in lv.describe_project(ProjectName=args.project)["ProjectDescription"]["Datasets"]
    ]
    print(f"{'type':<6} {'status':<32} {'total':>6} {'labeled':>8} {'normal':>7} {'anomaly':>8}")
    for dataset_type in types:
        found = lv.describe_dataset(ProjectName=args.project, DatasetType=dataset_type)["DatasetDescription"]
        stats = found.get("ImageStats", {})
        print(
            f"{dataset_type:<6} {found['Status']:<32} {stats.get('Total', 0):>6} "
            f"{stats.get('Labeled', 0):>8} {stats.get('Normal', 0):>7} {stats.get('Anomaly', 0):>8}"
        )
    return 0


# ------------------------------------------------------------------ models


def register_models(subparsers: Any) -> None:
    parser = subparsers.add_parser("models", help="list, describe and wait for models")
    commands = parser.add_subparsers(dest="models_command", required=True, metavar="COMMAND")
    listing = commands.add_parser("list", parents=[_common()], help="a project's model versions")
    listing.add_argument("project", help="project name")
    listing.set_defaults(run=models_list)
    describe = commands.add_parser("describe", parents=[_common()], help="DescribeModel, as JSON")
    describe.add_argument("project", help="project name")
    describe.add_argument("version", help="model version")
    describe.set_defaults(run=models_describe)
    wait = commands.add_parser(
        "wait", parents=[_common()], help="wait until training, starting or stopping ends, showing progress"
    )
    wait.add_argument("project", help="project name")
    wait.add_argument("version", help="model version")
    wait.set_defaults(run=models_wait)


def models_list(args: argparse.Namespace) -> int:
    lv = _clients(args).lookoutvision
    print(f"{'version':<8} {'status':<18} {'F1':>6}  message")
    for page in lv.get_paginator("list_models").paginate(ProjectName=args.project):
        for model in page["Models"]:
            f1 = model.get("Performance", {}).get("F1Score")
            score = f"{f1:.3f}" if f1 is not None else "-"
            message = model.get("StatusMessage", "")
            print(f"{model['ModelVersion']:<8} {model['Status']:<18} {score:>6}  {message}")
    return 0


def models_describe(args: argparse.Namespace) -> int:
    lv = _clients(args).lookoutvision
    _print_json(lv.describe_model(ProjectName=args.project, ModelVersion=args.version)["ModelDescription"])
    return 0


def _progress_printer() -> Callable[[dict[str, Any]], None]:
    """Prints each new status; a bar for "<stage>: i of n" messages, redrawn in place on a terminal."""
    tty = sys.stdout.isatty()
    started = time.monotonic()

    def show(description: dict[str, Any]) -> None:
        message = description.get("StatusMessage") or ""
        elapsed = time.monotonic() - started
        line = f"{description['Status']:<18} {progress_bar(message)} {message} ({elapsed:.0f} s)"
        print(("\r" + line.ljust(110)) if tty else line, end="" if tty else "\n", flush=True)

    return show


def progress_bar(message: str, width: int = 20) -> str:
    """[#####-----] 50% for a stage message "Stage: i of n ..."; blanks for any other message."""
    import re

    found = re.match(r"[A-Z][\w ]*: (\d+) of (\d+)", message)
    if not found or int(found.group(2)) == 0:
        return " " * (width + 7)
    share = min(1.0, int(found.group(1)) / int(found.group(2)))
    filled = round(share * width)
    return f"[{'#' * filled}{'-' * (width - filled)}] {share:>4.0%}"


def _wait_model(lv: Any, project: str, version: str) -> dict[str, Any]:
    from openlookout.client import wait_for_model

    try:
        model = wait_for_model(lv, project, version, on_change=_progress_printer())
    finally:
        if sys.stdout.isatty():
            print()
    return model


def models_wait(args: argparse.Namespace) -> int:
    from openlookout.client import WaitError

    try:
        model = _wait_model(_clients(args).lookoutvision, args.project, args.version)
    except WaitError as error:
        print(f"openlookout: {error}", file=sys.stderr)
        return 1
    _summary(model)
    return 0


def _summary(model: dict[str, Any]) -> None:
    performance = model.get("Performance") or {}
    figures = ", ".join(f"{k} {v:.3f}" for k, v in performance.items() if v is not None)
    print(f"model {model['ModelVersion']}: {model['Status']}" + (f" ({figures})" if figures else ""))


# ------------------------------------------------------------------ train, start, stop


def _s3_location(text: str) -> tuple[str, str]:
    if not text.startswith("s3://") or len(text) <= 5:
        raise argparse.ArgumentTypeError(f"expected s3://bucket/prefix/, got {text!r}")
    bucket, _, prefix = text[5:].partition("/")
    return bucket, prefix


def register_train(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train", parents=[_common()], help="CreateModel: train a new model version of a project"
    )
    parser.add_argument("project", help="project name (its datasets must be CREATE_COMPLETE)")
    parser.add_argument(
        "--output",
        type=_s3_location,
        required=True,
        metavar="s3://BUCKET/PREFIX/",
        help="where the evaluation files and report go (CreateModel's OutputConfig)",
    )
    parser.add_argument("--description", help="model description")
    parser.add_argument(
        "--wait", action="store_true", help="wait for the end of training, with a progress bar"
    )
    parser.set_defaults(run=train)


def train(args: argparse.Namespace) -> int:
    from openlookout.client import WaitError

    lv = _clients(args).lookoutvision
    bucket, prefix = args.output
    extra = {"Description": args.description} if args.description else {}
    created = lv.create_model(
        ProjectName=args.project, OutputConfig={"S3Location": {"Bucket": bucket, "Prefix": prefix}}, **extra
    )["ModelMetadata"]
    print(f"model {created['ModelVersion']}: {created['Status']}")
    if not args.wait:
        return 0
    try:
        _summary(_wait_model(lv, args.project, created["ModelVersion"]))
    except WaitError as error:
        print(f"openlookout: {error}", file=sys.stderr)
        return 1
    return 0


def register_hosting(subparsers: Any) -> None:
    start = subparsers.add_parser("start", parents=[_common()], help="StartModel: host a trained model")
    start.add_argument("project", help="project name")
    start.add_argument("version", help="model version")
    start.add_argument("--units", type=int, default=1, help="MinInferenceUnits (default 1)")
    start.add_argument("--wait", action="store_true", help="wait until HOSTED")
    start.set_defaults(run=start_model)
    stop = subparsers.add_parser("stop", parents=[_common()], help="StopModel: stop hosting a model")
    stop.add_argument("project", help="project name")
    stop.add_argument("version", help="model version")
    stop.add_argument("--wait", action="store_true", help="wait until TRAINED again")
    stop.set_defaults(run=stop_model)


def _hosting(args: argparse.Namespace, call: Callable[[Any], dict[str, Any]]) -> int:
    from openlookout.client import WaitError

    lv = _clients(args).lookoutvision
    print(f"model {args.version}: {call(lv)['Status']}")
    if args.wait:
        try:
            _summary(_wait_model(lv, args.project, args.version))
        except WaitError as error:
            print(f"openlookout: {error}", file=sys.stderr)
            return 1
    return 0


def start_model(args: argparse.Namespace) -> int:
    return _hosting(
        args,
        lambda lv: lv.start_model(
            ProjectName=args.project, ModelVersion=args.version, MinInferenceUnits=args.units
        ),
    )


def stop_model(args: argparse.Namespace) -> int:
    return _hosting(args, lambda lv: lv.stop_model(ProjectName=args.project, ModelVersion=args.version))


# ------------------------------------------------------------------ detect


def register_detect(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "detect", parents=[_common()], help="DetectAnomalies on image files (the model must be HOSTED)"
    )
    parser.add_argument("project", help="project name")
    parser.add_argument("version", help="model version")
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="JPEG or PNG files")
    parser.add_argument(
        "--overlay",
        type=Path,
        metavar="DIR",
        help="also write each image with its mask and classes drawn, to DIR",
    )
    parser.add_argument("--json", action="store_true", help="print each DetectAnomalyResult as JSON")
    parser.set_defaults(run=detect)


def _short(path: Path) -> str:
    return "/".join(path.parts[-2:])


def _content_type(path: Path) -> str:
    return "image/png" if path.suffix.lower() == ".png" else "image/jpeg"


def detect(args: argparse.Namespace) -> int:
    lv = _clients(args).lookoutvision
    if args.overlay:
        args.overlay.mkdir(parents=True, exist_ok=True)
    if not args.json:
        print(f"{'image':<32} {'anomalous':<10} {'confidence':>10}  anomalies")
    for path in args.images:
        data = path.read_bytes()
        result = lv.detect_anomalies(
            ProjectName=args.project, ModelVersion=args.version, Body=data, ContentType=_content_type(path)
        )["DetectAnomalyResult"]
        found = [a for a in result.get("Anomalies", []) if a["Name"] != "background"]
        if args.json:
            shown = dict(result)
            if "AnomalyMask" in shown:
                shown["AnomalyMask"] = base64.b64encode(shown["AnomalyMask"]).decode()
            _print_json({"Image": str(path), **shown})
        else:
            names = (
                ", ".join(f"{a['Name']} {a['PixelAnomaly']['TotalPercentageArea']:.2%}" for a in found) or "-"
            )
            print(f"{_short(path):<32} {result['IsAnomalous']!s:<10} {result['Confidence']:>10.3f}  {names}")
        if args.overlay:
            # Folder and name: test/dent/000.jpg and test/good/000.jpg must not overwrite each other.
            target = _target_or_warning(args.overlay, f"{path.parent.name}_{path.stem}.png".lstrip("_"))
            if target is not None:
                draw_result(data, result).save(target)
    if args.overlay:
        print(f"overlays written to {args.overlay}/")
    return 0


def draw_result(image_bytes: bytes, result: dict[str, Any]) -> Any:
    """The image with the anomaly mask blended in, a legend of the classes and the verdict."""
    from PIL import Image, ImageDraw

    image = Image.open(io.BytesIO(image_bytes)).convert("RGB")
    if result.get("AnomalyMask"):
        mask = (
            Image.open(io.BytesIO(result["AnomalyMask"]))
            .convert("RGB")
            .resize(image.size, Image.Resampling.NEAREST)
        )
        # The mask's background is white: blend only the pixels painted in a class colour.
        painted = mask.convert("L").point(lambda v: 0 if v >= 250 else 255)
        image.paste(Image.blend(image, mask, 0.6), (0, 0), painted)
    band = 18
    canvas = Image.new("RGB", (max(image.width, 240), image.height + band * 2), "white")
    canvas.paste(image, (0, band * 2))
    draw = ImageDraw.Draw(canvas)
    verdict = "ANOMALY" if result["IsAnomalous"] else "normal"
    draw.text(
        (4, 3),
        f"{verdict}  confidence {result['Confidence']:.2f}",
        fill="#b00000" if result["IsAnomalous"] else "#006000",
    )
    x = 4
    for anomaly in result.get("Anomalies", []):
        if anomaly["Name"] == "background":
            continue
        color = anomaly.get("PixelAnomaly", {}).get("Color", "#000000")
        draw.rectangle((x, band + 4, x + 10, band + 14), fill=color)
        label = f"{anomaly['Name']} {anomaly['PixelAnomaly']['TotalPercentageArea']:.1%}"
        draw.text((x + 14, band + 3), label, fill="black")
        x += 14 + int(draw.textlength(label)) + 10
    return canvas


# ------------------------------------------------------------------ export, report


def register_files(subparsers: Any) -> None:
    export = subparsers.add_parser(
        "export",
        parents=[_common()],
        help="download a model's ONNX graph and manifest, with a README on running it",
    )
    export.add_argument("project", help="project name")
    export.add_argument("version", help="model version (TRAINED or HOSTED)")
    export.add_argument(
        "directory", type=Path, metavar="DIR", help="where to write model.onnx, model.json, README.md"
    )
    export.add_argument(
        "--artifacts-bucket",
        default=client_settings().artifacts_bucket,
        help="the stack's ArtifactsBucketName output (default: the bucket that holds the model)",
    )
    export.set_defaults(run=export_model)
    report = subparsers.add_parser(
        "report",
        parents=[_common()],
        help="download a model's evaluation report (index.html, curves, overlays)",
    )
    report.add_argument("project", help="project name")
    report.add_argument("version", help="model version")
    report.add_argument("directory", type=Path, metavar="DIR", help="where to write the report")
    report.set_defaults(run=download_report)


def _artifact_prefix(project: str, version: str) -> str:
    return f"models/{project}/{version}/"


def _find_artifacts_bucket(s3: Any, prefix: str) -> str | None:
    for bucket in s3.list_buckets().get("Buckets", []):
        try:
            s3.head_object(Bucket=bucket["Name"], Key=f"{prefix}model.onnx")
        except Exception:  # not this bucket, or not ours to read
            continue
        return str(bucket["Name"])
    return None


EXPORT_README = """# {project} model {version}

Exported from OpenLookout by `openlookout export`. `model.onnx` is one self-contained graph
(pixels in; image score, anomaly map and class map out); `model.json` is its manifest (input
size, threshold, classes and colours). Performance at export: {performance}.

Run it anywhere onnxruntime runs, with the `openlookout` package (it decodes and resizes the
image exactly as training did, and answers L4V's DetectAnomalyResult):

```python
from openlookout.ml.inference import Detector
detector = Detector.load(".")               # this folder
result = detector.detect(open("part.jpg", "rb").read())
print(result.is_anomalous, result.confidence, result.to_l4v()["Anomalies"])
```

Or with onnxruntime alone (`pip install onnxruntime numpy pillow`): the graph takes RGB pixels
(0-255, NCHW float32, at the size in model.json's `input.shape`; normalisation is inside the graph)
and returns the raw `score`, the `anomaly_map` and, with several classes, the `class_map`. An image
is anomalous when its score is at or above model.json's `threshold`. (A plain resize differs from
the training resize by about half a grey level; model.json's `input.resize` says what it did.)

```python
import json
import numpy as np
import onnxruntime
from PIL import Image
manifest = json.load(open("model.json"))
_, _, height, width = manifest["input"]["shape"]
pixels = np.asarray(Image.open("part.jpg").convert("RGB").resize((width, height), Image.BILINEAR))
batch = pixels.transpose(2, 0, 1)[None].astype(np.float32)
session = onnxruntime.InferenceSession("model.onnx")
outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {{"image": batch}})))
print("anomalous:", bool(outputs["score"][0] >= manifest["threshold"]), "score:", float(outputs["score"][0]))
```
"""


def export_model(args: argparse.Namespace) -> int:
    clients = _clients(args)
    model = clients.lookoutvision.describe_model(ProjectName=args.project, ModelVersion=args.version)[
        "ModelDescription"
    ]
    prefix = _artifact_prefix(args.project, args.version)
    bucket = args.artifacts_bucket or _find_artifacts_bucket(clients.s3, prefix)
    if bucket is None:
        print(f"openlookout: no bucket holds {prefix}model.onnx; pass --artifacts-bucket", file=sys.stderr)
        return 1
    args.directory.mkdir(parents=True, exist_ok=True)
    for name in ("model.onnx", "model.json"):
        clients.s3.download_file(bucket, prefix + name, str(args.directory / name))
    performance = json.dumps(model.get("Performance") or {})
    text = EXPORT_README.format(project=args.project, version=args.version, performance=performance)
    (args.directory / "README.md").write_text(text)
    print(f"exported s3://{bucket}/{prefix} to {args.directory}/ (model.onnx, model.json, README.md)")
    return 0


def _target_or_warning(directory: Path, name: str) -> Path | None:
    """Where `name` goes under `directory`, or None (with a warning) when it would land outside."""
    from openlookout.core.paths import UnsafePath, join_under

    try:
        return join_under(directory, name)
    except UnsafePath as error:
        print(f"openlookout: skipped {error}", file=sys.stderr)
        return None


def report_prefix(evaluation_result_key: str) -> str:
    """The report folder beside EvaluationResult-<project>-<version>.json (see workflows/training.py)."""
    folder, _, name = evaluation_result_key.rpartition("/")
    stem = name.removesuffix(".json").replace("EvaluationResult-", "EvaluationReport-", 1)
    return f"{folder}/{stem}/" if folder else f"{stem}/"


def download_report(args: argparse.Namespace) -> int:
    clients = _clients(args)
    model = clients.lookoutvision.describe_model(ProjectName=args.project, ModelVersion=args.version)[
        "ModelDescription"
    ]
    location = model.get("EvaluationResult")
    if not location:
        print(f"openlookout: model {args.version} has no evaluation yet ({model['Status']})", file=sys.stderr)
        return 1
    prefix = report_prefix(location["Key"])
    count = 0
    for page in clients.s3.get_paginator("list_objects_v2").paginate(
        Bucket=location["Bucket"], Prefix=prefix
    ):
        for item in page.get("Contents", []):
            # The bucket may hold keys that someone else wrote: each must land inside the directory.
            target = _target_or_warning(args.directory, item["Key"].removeprefix(prefix))
            if target is None:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            clients.s3.download_file(location["Bucket"], item["Key"], str(target))
            count += 1
    if not count:
        print(f"openlookout: nothing under s3://{location['Bucket']}/{prefix}", file=sys.stderr)
        return 1
    entry = args.directory / "index.html"
    print(f"{count} files from s3://{location['Bucket']}/{prefix} in {args.directory}/")
    if entry.exists():
        print(f"open {entry}")
    return 0


CLIENT_COMMANDS: list[Callable[[Any], None]] = [
    register_projects,
    register_datasets,
    register_models,
    register_train,
    register_hosting,
    register_detect,
    register_files,
]


def run_with_errors(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Service errors as one line (the AWS error code and message), not a traceback."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return run(args)
    except ClientError as error:
        info = error.response.get("Error", {})
        print(f"openlookout: {info.get('Code')}: {info.get('Message')}", file=sys.stderr)
        return 1
    except BotoCoreError as error:
        print(f"openlookout: {error}", file=sys.stderr)
        return 1
