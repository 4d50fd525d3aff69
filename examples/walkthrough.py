"""Lookout for Vision's getting-started flow, with plain boto3, against OpenLookout.

    python examples/walkthrough.py --start-service          # starts `openlookout serve` itself
    python examples/walkthrough.py --endpoint http://127.0.0.1:3000

It generates a small example dataset (washers with scratches, dents and stains; nothing is
downloaded), uploads it to S3 with `openlookout manifest from-folder`, then does what an L4V
user did: create a project and its datasets, train a model, start it, detect anomalies, stop it.
With --start-service the service keeps its data in ./.openlookout (what `make serve` serves) and
its log in ./.openlookout/logs/demo-service.log. The evaluation report and a few detection overlays
go to ./demo-output/.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3

from openlookout.examples import generate

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / ".openlookout"
OUTPUT_DIR = ROOT / "demo-output"


def say(message: str) -> None:
    print(message, flush=True)


@contextmanager
def local_service(data_dir: Path) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log_path = data_dir / "logs" / "demo-service.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "openlookout.cli", "serve", "--port", str(port), "--data-dir", str(data_dir)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while "OpenLookout listening on" not in log_path.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(
                "openlookout serve did not start (is `make serve` using the same data dir?):\n"
                + log_path.read_text()
            )
        time.sleep(0.2)
    say(f"started openlookout serve on {endpoint} (data: {data_dir}, log: {log_path})")
    try:
        yield endpoint
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        log.close()
        say("stopped the service")


def wait(describe: Callable[[], dict[str, Any]], done: set[str], label: str) -> dict[str, Any]:
    started, last = time.monotonic(), ""
    while True:
        current = describe()
        seen = f"{current['Status']} {current.get('StatusMessage') or ''}"
        if seen != last:  # training reports its stage and progress in StatusMessage
            elapsed = time.monotonic() - started
            say(f"  {label}: {current['Status']} ({elapsed:.0f} s) {current.get('StatusMessage') or ''}")
            last = seen
        if current["Status"] in done:
            return current
        time.sleep(1)


def upload_with_tool(endpoint: str, folder: Path, bucket: str, prefix: str) -> None:
    """`openlookout manifest from-folder`, run as a user runs it, against the endpoint's S3."""
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "demo",
        "AWS_SECRET_ACCESS_KEY": "demo",
        "AWS_REGION": "us-east-1",
    }
    command = ["manifest", "from-folder", str(folder), "--bucket", bucket, "--prefix", prefix]
    subprocess.run([sys.executable, "-m", "openlookout.cli", *command], check=True, env=env, cwd=ROOT)


def save_results(s3: Any, model: dict[str, Any], pictures: list[tuple[Path, bytes, dict[str, Any]]]) -> Path:
    """The evaluation report from the model's S3 output, and detection overlays, in ./demo-output/."""
    from openlookout.cli.report import report_prefix

    location = model["EvaluationResult"]
    prefix = report_prefix(location["Key"])
    report = OUTPUT_DIR / "report"
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=location["Bucket"], Prefix=prefix):
        for item in page.get("Contents", []):
            target = report / item["Key"][len(prefix) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(location["Bucket"], item["Key"], str(target))
    save_detections(pictures, OUTPUT_DIR / "detections")
    return report / "index.html"


def save_detections(pictures: list[tuple[Path, bytes, dict[str, Any]]], directory: Path) -> list[Path]:
    """Each (image path, its bytes, its DetectAnomalyResult) drawn and named as `openlookout detect
    --overlay` draws and names it."""
    from openlookout.cli.overlay import draw_result, overlay_name

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for path, data, result in pictures:
        written.append(directory / overlay_name(path))
        draw_result(data, result).save(written[-1])
    return written


def walkthrough(endpoint: str, workdir: Path, kept_in: str) -> int:
    session = boto3.session.Session(
        aws_access_key_id="demo", aws_secret_access_key="demo", region_name="us-east-1"
    )
    lookoutvision = session.client("lookoutvision", endpoint_url=endpoint)
    s3 = session.client("s3", endpoint_url=endpoint)
    suffix = uuid.uuid4().hex[:6]
    project, bucket = f"washers-{suffix}", f"demo-images-{suffix}"

    say("1. generating the example images (washers; scratches, dents, stains)")
    dataset = generate(workdir / "washers")
    say(f"2. uploading them to s3://{bucket} and writing the manifests")
    s3.create_bucket(Bucket=bucket)
    upload_with_tool(endpoint, dataset, bucket, "washers")

    say(f"3. CreateProject {project}")
    lookoutvision.create_project(ProjectName=project)
    say("4. CreateDataset train and test from the manifests")
    for dataset_type in ("train", "test"):
        lookoutvision.create_dataset(
            ProjectName=project,
            DatasetType=dataset_type,
            DatasetSource={
                "GroundTruthManifest": {
                    "S3Object": {"Bucket": bucket, "Key": f"washers/{dataset_type}.manifest"}
                }
            },
        )
    for dataset_type in ("train", "test"):
        described = wait(
            lambda t=dataset_type: lookoutvision.describe_dataset(ProjectName=project, DatasetType=t)[
                "DatasetDescription"
            ],
            {"CREATE_COMPLETE", "CREATE_FAILED"},
            f"{dataset_type} dataset",
        )
        stats = described.get("ImageStats", {})
        total, normal, anomalous = stats.get("Total"), stats.get("Normal"), stats.get("Anomaly")
        say(f"     {total} images: {normal} normal, {anomalous} anomalous")

    say("5. CreateModel (the model's StatusMessage shows the training stage and progress)")
    started = time.monotonic()
    version = lookoutvision.create_model(
        ProjectName=project, OutputConfig={"S3Location": {"Bucket": bucket, "Prefix": "output/"}}
    )["ModelMetadata"]["ModelVersion"]
    model = wait(
        lambda: lookoutvision.describe_model(ProjectName=project, ModelVersion=version)["ModelDescription"],
        {"TRAINED", "TRAINING_FAILED"},
        f"model {version}",
    )
    if model["Status"] != "TRAINED":
        return 1
    performance = model["Performance"]
    say(
        f"     trained in {time.monotonic() - started:.0f} s: F1 {performance['F1Score']:.3f}, "
        f"precision {performance['Precision']:.3f}, recall {performance['Recall']:.3f}"
    )
    say(f"     evaluation: s3://{bucket}/{model['EvaluationResult']['Key']}")

    say("6. StartModel")
    lookoutvision.start_model(ProjectName=project, ModelVersion=version, MinInferenceUnits=1)
    wait(
        lambda: lookoutvision.describe_model(ProjectName=project, ModelVersion=version)["ModelDescription"],
        {"HOSTED", "HOSTING_FAILED"},
        f"model {version}",
    )

    say("7. DetectAnomalies on the test images")
    rows, correct, pictures = [], 0, []
    images = sorted((dataset / "test").glob("*/*.jpg"))
    for path in images:
        result = lookoutvision.detect_anomalies(
            ProjectName=project, ModelVersion=version, Body=path.read_bytes(), ContentType="image/jpeg"
        )["DetectAnomalyResult"]
        truth = path.parent.name
        if path.stem == "000":  # one picture per folder for ./demo-output/detections
            pictures.append((path, path.read_bytes(), result))
        found = result.get("Anomalies", [])[1:]  # the first entry is the background
        area = sum(a["PixelAnomaly"]["TotalPercentageArea"] for a in found)
        names = ",".join(a["Name"] for a in found) or "-"
        correct += result["IsAnomalous"] == (truth != "good")
        rows.append(
            (
                f"{truth}/{path.name}",
                truth != "good",
                result["IsAnomalous"],
                result["Confidence"],
                area,
                names,
            )
        )
    say(f"   {'image':<22} {'truth':<8} {'IsAnomalous':<12} {'Confidence':>10} {'area':>7}  anomalies")
    for name, truth, predicted, confidence, area, names in rows:
        mark = "" if truth == predicted else "  <- wrong"
        label = "anomaly" if truth else "normal"
        say(f"   {name:<22} {label:<8} {predicted!s:<12} {confidence:>10.3f} {area:>6.2%}  {names}{mark}")
    say(f"   {correct} of {len(rows)} images classified correctly")

    say("8. StopModel")
    lookoutvision.stop_model(ProjectName=project, ModelVersion=version)
    wait(
        lambda: lookoutvision.describe_model(ProjectName=project, ModelVersion=version)["ModelDescription"],
        {"TRAINED"},
        f"model {version}",
    )
    index = save_results(s3, model, pictures)
    say(f"9. the evaluation report: {index}")
    say(f"   detections drawn on {len(pictures)} images: {OUTPUT_DIR / 'detections'}/")
    say(f"done: project {project}, its datasets and model {version} are kept {kept_in}.")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL"))
    parser.add_argument("--start-service", action="store_true", help="start `openlookout serve` for the demo")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="openlookout-demo-") as tmp:
        workdir = Path(tmp)
        if args.start_service or not args.endpoint:
            with local_service(DATA_DIR) as endpoint:
                kept = f"in {DATA_DIR}: `make serve` serves them on http://127.0.0.1:3000"
                return walkthrough(endpoint, workdir, kept)
        return walkthrough(args.endpoint, workdir, f"in the service at {args.endpoint}")


if __name__ == "__main__":
    sys.exit(main())
