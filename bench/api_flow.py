"""The whole product through boto3: how long L4V's flow takes against `openlookout serve`.

    .venv/bin/python bench/api_flow.py [--data ../shared/datasets/mvtec-bottle] [--train-images 100]

Starts the service on a fresh data dir, uploads an MVTec-layout folder (the first N training
images, the whole test split) with `openlookout manifest from-folder`, creates the datasets,
and times CreateModel -> TRAINED, StartModel -> HOSTED and DetectAnomalies over the test set;
prints a table and writes bench/results/api-flow-<dataset>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from examples.walkthrough import local_service, upload_with_tool  # noqa: E402
from openlookout.ml.evaluation.metrics import auroc  # noqa: E402


def _wait(describe: Any, done: set[str]) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    while True:
        current = describe()
        if current["Status"] in done:
            return current, time.monotonic() - started
        time.sleep(0.5)


def run(data: Path, train_images: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="openlookout-bench-") as tmp:
        folder = Path(tmp) / "subset"
        (folder / "train" / "good").mkdir(parents=True)
        for image in sorted((data / "train" / "good").iterdir())[:train_images]:
            (folder / "train" / "good" / image.name).symlink_to(image)
        (folder / "test").symlink_to(data / "test")
        (folder / "ground_truth").symlink_to(data / "ground_truth")
        with local_service(Path(tmp) / "data") as endpoint:
            session = boto3.session.Session(
                aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1"
            )
            lv = session.client("lookoutvision", endpoint_url=endpoint)
            session.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
            upload_with_tool(endpoint, folder, "bench", "b")
            lv.create_project(ProjectName="bench")
            imported = time.monotonic()
            for kind in ("train", "test"):
                lv.create_dataset(
                    ProjectName="bench",
                    DatasetType=kind,
                    DatasetSource={
                        "GroundTruthManifest": {"S3Object": {"Bucket": "bench", "Key": f"b/{kind}.manifest"}}
                    },
                )
            for kind in ("train", "test"):
                _wait(
                    lambda k=kind: lv.describe_dataset(ProjectName="bench", DatasetType=k)[
                        "DatasetDescription"
                    ],
                    {"CREATE_COMPLETE", "CREATE_FAILED"},
                )
            import_s = time.monotonic() - imported
            lv.create_model(
                ProjectName="bench", OutputConfig={"S3Location": {"Bucket": "bench", "Prefix": "o/"}}
            )
            model, train_s = _wait(
                lambda: lv.describe_model(ProjectName="bench", ModelVersion="1")["ModelDescription"],
                {"TRAINED", "TRAINING_FAILED"},
            )
            if model["Status"] != "TRAINED":
                raise SystemExit(model["StatusMessage"])
            lv.start_model(ProjectName="bench", ModelVersion="1", MinInferenceUnits=1)
            _, host_s = _wait(
                lambda: lv.describe_model(ProjectName="bench", ModelVersion="1")["ModelDescription"],
                {"HOSTED", "HOSTING_FAILED"},
            )
            latencies, scores, labels = [], [], []
            for path in sorted((data / "test").glob("*/*")):
                body = path.read_bytes()
                started = time.perf_counter()
                result = lv.detect_anomalies(
                    ProjectName="bench",
                    ModelVersion="1",
                    Body=body,
                    ContentType="image/png" if path.suffix == ".png" else "image/jpeg",
                )
                latencies.append((time.perf_counter() - started) * 1000)
                answer = result["DetectAnomalyResult"]
                scores.append(answer["Confidence"] if answer["IsAnomalous"] else 1 - answer["Confidence"])
                labels.append(path.parent.name != "good")
            lv.stop_model(ProjectName="bench", ModelVersion="1")
    latencies.sort()
    return {
        "dataset": data.name,
        "train_images": train_images,
        "test_images": len(labels),
        "dataset_import_s": round(import_s, 1),
        "create_model_to_trained_s": round(train_s, 1),
        "start_model_to_hosted_s": round(host_s, 1),
        "detect_p50_ms": round(statistics.median(latencies), 1),
        "detect_p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))], 1),
        "image_auroc_through_api": round(auroc(np.array(scores), np.array(labels)), 4),
        "performance": model["Performance"],
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "mvtec-bottle")
    parser.add_argument("--train-images", type=int, default=100)
    args = parser.parse_args()
    result = run(args.data.resolve(), args.train_images)
    out = ROOT / "bench" / "results" / f"api-flow-{result['dataset']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    for key, value in result.items():
        print(f"{key:<28} {value}")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
