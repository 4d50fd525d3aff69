"""Models end to end through plain boto3 clients against `openlookout serve`: L4V's getting-started
flow on the generated example images (tests/example_images.py), and every error case of the model
operations."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from openlookout.ml.evaluation.metrics import auroc
from tests.example_images import labelled_test_images

ROOT = Path(__file__).resolve().parents[2]
POLL_TIMEOUT_S = 900


def wait_for(
    describe: Callable[[], dict[str, Any]],
    done: set[str],
    timeout_s: float = POLL_TIMEOUT_S,
    poll_s: float = 1.0,
) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        current = describe()
        if current["Status"] in done:
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"still {current['Status']} after {timeout_s} s: {current}")
        time.sleep(poll_s)


def upload_folder(service: Any, folder: Path, bucket: str, prefix: str, key: str = "contract") -> None:
    """`openlookout manifest from-folder`, as a user runs it, against the service's S3 (`key`: the
    access key id and secret it signs with)."""
    environment = {
        **os.environ,
        "AWS_ENDPOINT_URL": service.endpoint_url,
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": key,
        "AWS_REGION": "us-east-1",
    }
    command = ["manifest", "from-folder", str(folder), "--bucket", bucket, "--prefix", prefix]
    subprocess.run([sys.executable, "-m", "openlookout.cli", *command], check=True, env=environment, cwd=ROOT)


def create_datasets(
    lookoutvision: Any, project: str, bucket: str, prefix: str, types: tuple[str, ...]
) -> None:
    for dataset_type in types:
        manifest = f"{prefix}/{dataset_type}.manifest"
        lookoutvision.create_dataset(
            ProjectName=project,
            DatasetType=dataset_type,
            DatasetSource={"GroundTruthManifest": {"S3Object": {"Bucket": bucket, "Key": manifest}}},
        )
    for dataset_type in types:
        described = wait_for(
            lambda t=dataset_type: lookoutvision.describe_dataset(ProjectName=project, DatasetType=t)[
                "DatasetDescription"
            ],
            {"CREATE_COMPLETE", "CREATE_FAILED"},
        )
        assert described["Status"] == "CREATE_COMPLETE", described


def train_only_project(
    service: Any, lookoutvision: Any, s3: Any, folder: Path, name: str, images: int, washers: Path
) -> tuple[str, str]:
    """A project whose only dataset is `train`, with the first `images` normal example images."""
    project = bucket = f"{name}-{os.urandom(4).hex()}"
    (folder / "train" / "good").mkdir(parents=True)
    for image in sorted((washers / "train" / "good").glob("*.jpg"))[:images]:
        (folder / "train" / "good" / image.name).symlink_to(image)
    s3.create_bucket(Bucket=bucket)
    upload_folder(service, folder, bucket, name)
    lookoutvision.create_project(ProjectName=project)
    create_datasets(lookoutvision, project, bucket, name, ("train",))
    return project, bucket


@dataclass
class TrainedModel:
    project: str
    bucket: str
    version: str
    arn: str
    seconds_to_train: float
    test_images: list[tuple[Path, bool]]


def _unsupervised_subset(washers: Path, directory: Path) -> list[tuple[Path, bool]]:
    """train/good alone (no labelled defects), and the whole test split with its masks (symlinks)."""
    (directory / "train").mkdir(parents=True)
    (directory / "train" / "good").symlink_to(washers / "train" / "good")
    (directory / "test").symlink_to(washers / "test")
    (directory / "ground_truth").symlink_to(washers / "ground_truth")
    return labelled_test_images(washers)


@pytest.fixture(scope="module")
def trained(
    service: Any, lookoutvision: Any, s3: Any, tmp_path_factory: pytest.TempPathFactory, washers: Path
) -> Iterator[TrainedModel]:
    suffix = os.urandom(4).hex()
    project, bucket = f"bottles-{suffix}", f"images-{suffix}"
    s3.create_bucket(Bucket=bucket)
    folder = tmp_path_factory.mktemp("washers")
    test_images = _unsupervised_subset(washers, folder)
    upload_folder(service, folder, bucket, "bottle")
    lookoutvision.create_project(ProjectName=project)
    create_datasets(lookoutvision, project, bucket, "bottle", ("train", "test"))
    started = time.monotonic()
    created = lookoutvision.create_model(
        ProjectName=project,
        OutputConfig={"S3Location": {"Bucket": bucket, "Prefix": "output/"}},
        Tags=[{"Key": "line", "Value": "bottling-4"}],
    )["ModelMetadata"]
    assert created["Status"] == "TRAINING"
    version = created["ModelVersion"]
    model = wait_for(
        lambda: lookoutvision.describe_model(ProjectName=project, ModelVersion=version)["ModelDescription"],
        {"TRAINED", "TRAINING_FAILED"},
    )
    assert model["Status"] == "TRAINED", model["StatusMessage"]
    yield TrainedModel(project, bucket, version, model["ModelArn"], time.monotonic() - started, test_images)


def _png(path: Path) -> bytes:
    buffer = io.BytesIO()
    Image.open(path).save(buffer, "PNG")
    return buffer.getvalue()


def test_getting_started_flow_reproduces_the_evaluation(
    lookoutvision: Any, s3: Any, trained: TrainedModel
) -> None:
    print(f"\nthe example images trained in {trained.seconds_to_train:.1f} s (through the API, polling)")
    model = lookoutvision.describe_model(ProjectName=trained.project, ModelVersion="latest")[
        "ModelDescription"
    ]
    assert set(model["Performance"]) == {"F1Score", "Recall", "Precision"}
    assert model["EvaluationManifest"]["Key"] == f"output/EvaluationManifest-{trained.project}-1.json"
    result = s3.get_object(**model["EvaluationResult"])["Body"].read()
    metrics = __import__("json").loads(result)["AggregatedEvaluationResults"]["Metrics"]
    manifest_lines = s3.get_object(**model["EvaluationManifest"])["Body"].read().decode().splitlines()
    assert len(manifest_lines) == len(trained.test_images)

    assert lookoutvision.list_tags_for_resource(ResourceArn=trained.arn)["Tags"] == [
        {"Key": "line", "Value": "bottling-4"}
    ]
    lookoutvision.tag_resource(ResourceArn=trained.arn, Tags=[{"Key": "owner", "Value": "qa"}])
    lookoutvision.untag_resource(ResourceArn=trained.arn, TagKeys=["line"])
    assert lookoutvision.list_tags_for_resource(ResourceArn=trained.arn)["Tags"] == [
        {"Key": "owner", "Value": "qa"}
    ]

    sample = trained.test_images[0][0].read_bytes()
    with pytest.raises(lookoutvision.exceptions.ConflictException) as excinfo:
        lookoutvision.detect_anomalies(
            ProjectName=trained.project, ModelVersion=trained.version, Body=sample, ContentType="image/jpeg"
        )
    assert "HOSTED" in str(excinfo.value)

    assert (
        lookoutvision.start_model(
            ProjectName=trained.project, ModelVersion=trained.version, MinInferenceUnits=1
        )["Status"]
        == "STARTING_HOSTING"
    )
    hosted = wait_for(
        lambda: lookoutvision.describe_model(ProjectName=trained.project, ModelVersion=trained.version)[
            "ModelDescription"
        ],
        {"HOSTED", "HOSTING_FAILED"},
    )
    assert hosted["Status"] == "HOSTED", hosted["StatusMessage"]

    def detect(item: tuple[Path, bool]) -> tuple[float, bool, dict]:
        path, anomalous = item
        answer = lookoutvision.detect_anomalies(
            ProjectName=trained.project,
            ModelVersion=trained.version,
            Body=path.read_bytes(),
            ContentType="image/jpeg",
        )["DetectAnomalyResult"]
        score = answer["Confidence"] if answer["IsAnomalous"] else 1 - answer["Confidence"]
        return score, anomalous, answer

    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(detect, trained.test_images))
    scores = np.array([a[0] for a in answers])
    labels = np.array([a[1] for a in answers])
    api_auroc = auroc(scores, labels)
    print(f"image AUROC through DetectAnomalies: {api_auroc:.4f}; evaluation result: {metrics['ROCAUC']:.4f}")
    assert abs(api_auroc - metrics["ROCAUC"]) < 0.01
    assert api_auroc >= 0.99
    first = answers[-1][2]
    assert first["Source"] == {"Type": "direct"}
    assert first["Anomalies"][0]["Name"] == "background"
    assert Image.open(io.BytesIO(first["AnomalyMask"])).size == Image.open(trained.test_images[-1][0]).size

    png = _png(trained.test_images[0][0])
    assert "DetectAnomalyResult" in lookoutvision.detect_anomalies(
        ProjectName=trained.project, ModelVersion="latest", Body=png, ContentType="image/png"
    )
    _hosted_error_cases(lookoutvision, trained, png)

    assert lookoutvision.stop_model(ProjectName=trained.project, ModelVersion=trained.version)["Status"] == (
        "STOPPING_HOSTING"
    )
    stopped = wait_for(
        lambda: lookoutvision.describe_model(ProjectName=trained.project, ModelVersion=trained.version)[
            "ModelDescription"
        ],
        {"TRAINED"},
    )
    assert stopped["Status"] == "TRAINED"


def _hosted_error_cases(lookoutvision: Any, trained: TrainedModel, png: bytes) -> None:
    project, version = trained.project, trained.version
    with pytest.raises(lookoutvision.exceptions.ConflictException):
        lookoutvision.delete_model(ProjectName=project, ModelVersion=version)
    cases = [
        (png[: len(png) // 3], "image/png", "cannot be decoded"),
        (png, "image/gif", "content-type must be one of the following. image/jpeg, image/png"),
        (b"\x89PNG\r\n\x1a\n" + os.urandom(30 * 1024 * 1024), "image/png", "8 MB"),
    ]
    for body, content_type, message in cases:
        with pytest.raises(lookoutvision.exceptions.ValidationException) as excinfo:
            lookoutvision.detect_anomalies(
                ProjectName=project, ModelVersion=version, Body=body, ContentType=content_type
            )
        assert message in str(excinfo.value)
    with pytest.raises(lookoutvision.exceptions.ResourceNotFoundException) as excinfo:
        lookoutvision.detect_anomalies(
            ProjectName=project, ModelVersion="99", Body=png, ContentType="image/png"
        )
    assert excinfo.value.response["ResourceType"] == "MODEL"
    # the service is still up and still serves the model
    assert lookoutvision.detect_anomalies(
        ProjectName=project, ModelVersion=version, Body=png, ContentType="image/png"
    )


def test_concurrent_create_model_calls_get_distinct_versions(
    service: Any, lookoutvision: Any, s3: Any, tmp_path: Path, washers: Path
) -> None:
    project, bucket = train_only_project(service, lookoutvision, s3, tmp_path, "concurrent", 12, washers)

    def create(_: int) -> str:
        return str(
            lookoutvision.create_model(
                ProjectName=project, OutputConfig={"S3Location": {"Bucket": bucket, "Prefix": "out/"}}
            )["ModelMetadata"]["ModelVersion"]
        )

    with ThreadPoolExecutor(max_workers=3) as pool:
        versions = sorted(pool.map(create, range(3)), key=int)
    assert versions == ["1", "2", "3"]
    listed = [
        m["ModelVersion"]
        for page in lookoutvision.get_paginator("list_models").paginate(
            ProjectName=project, PaginationConfig={"PageSize": 2}
        )
        for m in page["Models"]
    ]
    assert listed == versions
    for version in versions:  # a single train dataset is split for evaluation, as L4V did
        model = wait_for(
            lambda v=version: lookoutvision.describe_model(ProjectName=project, ModelVersion=v)[
                "ModelDescription"
            ],
            {"TRAINED", "TRAINING_FAILED"},
        )
        assert model["Status"] == "TRAINED", model["StatusMessage"]
        lookoutvision.delete_model(ProjectName=project, ModelVersion=version)
    with pytest.raises(lookoutvision.exceptions.ValidationException):
        lookoutvision.delete_model(ProjectName=project, ModelVersion="latest")
    with pytest.raises(lookoutvision.exceptions.ResourceNotFoundException):
        lookoutvision.describe_model(ProjectName=project, ModelVersion="latest")
    assert (
        lookoutvision.create_model(
            ProjectName=project, OutputConfig={"S3Location": {"Bucket": bucket, "Prefix": "out/"}}
        )["ModelMetadata"]["ModelVersion"]
        == "4"
    )  # versions are never reused


def test_training_cut_short_by_a_restart_ends_in_training_failed(
    local_service: Any, lookoutvision: Any, s3: Any, tmp_path: Path, washers: Path
) -> None:
    project, bucket = train_only_project(local_service, lookoutvision, s3, tmp_path, "restart", 40, washers)
    lookoutvision.create_model(
        ProjectName=project, OutputConfig={"S3Location": {"Bucket": bucket, "Prefix": "o/"}}
    )
    local_service.stop()
    local_service.start()
    model = wait_for(
        lambda: lookoutvision.describe_model(ProjectName=project, ModelVersion="1")["ModelDescription"],
        {"TRAINED", "TRAINING_FAILED"},
        timeout_s=120,
    )
    # Training 40 images takes far longer than the stop: the interrupted workflow is repaired.
    assert model["Status"] == "TRAINING_FAILED", model
    assert "workflow ended FAILED" in model["StatusMessage"]


def test_32_concurrent_detect_anomalies_no_5xx_and_clean_emf(
    service: Any, local_service: Any, lookoutvision: Any, trained: TrainedModel
) -> None:
    """32 clients at once: no 5xx, and every metric line in the server's output is a whole EMF
    record with its dimensions (one metrics object per request, one write per record)."""
    import json

    from botocore.exceptions import ClientError

    from tests.contract.conftest import client_for

    project, version = trained.project, trained.version
    lookoutvision.start_model(ProjectName=project, ModelVersion=version, MinInferenceUnits=1)
    hosted = wait_for(
        lambda: lookoutvision.describe_model(ProjectName=project, ModelVersion=version)["ModelDescription"],
        {"HOSTED", "HOSTING_FAILED"},
    )
    assert hosted["Status"] == "HOSTED", hosted["StatusMessage"]
    client = client_for(service, "lookoutvision", max_pool_connections=32)
    images = [path.read_bytes() for path, _ in trained.test_images[:32]]
    offset = local_service.log_path.stat().st_size

    def detect(index: int) -> int:
        body = images[index % len(images)] if index % 8 else b"\xff\xd8\xff\xe0 not a jpeg"
        try:
            client.detect_anomalies(
                ProjectName=project, ModelVersion=version, Body=body, ContentType="image/jpeg"
            )
            return 200
        except ClientError as error:
            return int(error.response["ResponseMetadata"]["HTTPStatusCode"])

    try:
        with ThreadPoolExecutor(32) as pool:
            statuses = list(pool.map(detect, range(128)))
    finally:
        lookoutvision.stop_model(ProjectName=project, ModelVersion=version)
    assert [s for s in statuses if s >= 500] == []
    assert statuses.count(400) == 16 and statuses.count(200) == 112, statuses
    time.sleep(0.5)  # the log is written by another process
    text = local_service._log_since(offset)
    records = []
    for line in text.splitlines():
        if '"_aws"' not in line:
            continue
        assert line.startswith('{"_aws"'), f"an EMF record glued to another line: {line[:200]}"
        record = json.loads(line)
        (directive,) = record["_aws"]["CloudWatchMetrics"]
        for dimension_set in directive["Dimensions"]:
            for dimension in dimension_set:
                assert record.get(dimension), f"dimension {dimension} missing: {line}"
        assert {"ProjectName", "ModelVersion"} <= set(directive["Dimensions"][0])
        for metric in directive["Metrics"]:
            assert metric["Name"] in record
        records.append(record)
    ours = [r for r in records if r.get("ProjectName") == project]
    assert len(ours) >= 128, f"{len(ours)} EMF records for 128 requests"
    assert sum(r.get("SuccessfulRequestCount", [0])[0] for r in ours) == 112
    assert sum(r.get("InvalidImageCount", [0])[0] for r in ours) == 16
