"""The L4V flow with boto3 against `make sam-local`: every API call runs in its function's Lambda
container (`sam local start-api`), every Step Functions task in one (`sam local start-lambda`),
training in the training image. Images: a subset of the washers the project generates
(tests/example_images.py), so a fresh clone runs it as it is.

`-m smoke` (CI) runs the calls that need no training: projects, the dataset import from a
manifest, and the error cases; the whole file also trains, hosts, detects, stops, and compares the
container-trained model with one trained by `openlookout serve` on the same data.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from PIL import Image

from tests.contract.conftest import LocalServer, free_port
from tests.contract.test_models import upload_folder
from tests.integration.conftest import USER_CREDENTIALS, SamLocal, wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TRAIN_IMAGES = 20
TEST_IMAGES = {"good": 4, "scratch": 2, "dent": 2, "stain": 2}
IMPORT_TIMEOUT_S = 600  # cold containers on a busy 2-core machine
TRAIN_TIMEOUT_S = 1200


@dataclass
class Imported:
    project: str
    bucket: str
    folder: Path
    test_images: list[tuple[Path, bool]]


def washer_subset(washers: Path, folder: Path) -> list[tuple[Path, bool]]:
    """train/good and a few test images of each kind, with their masks, as symlinks."""
    (folder / "train" / "good").mkdir(parents=True)
    for image in sorted((washers / "train" / "good").glob("*.jpg"))[:TRAIN_IMAGES]:
        (folder / "train" / "good" / image.name).symlink_to(image)
    chosen = []
    for kind, count in TEST_IMAGES.items():
        (folder / "test" / kind).mkdir(parents=True)
        for image in sorted((washers / "test" / kind).glob("*.jpg"))[:count]:
            (folder / "test" / kind / image.name).symlink_to(image)
            chosen.append((folder / "test" / kind / image.name, kind != "good"))
            mask = washers / "ground_truth" / kind / f"{image.stem}_mask.png"
            if mask.exists():
                (folder / "ground_truth" / kind).mkdir(parents=True, exist_ok=True)
                (folder / "ground_truth" / kind / mask.name).symlink_to(mask)
    return chosen


def import_datasets(lv: Any, project: str, bucket: str, prefix: str) -> dict[str, dict[str, Any]]:
    for dataset_type in ("train", "test"):
        lv.create_dataset(
            ProjectName=project,
            DatasetType=dataset_type,
            DatasetSource={
                "GroundTruthManifest": {
                    "S3Object": {"Bucket": bucket, "Key": f"{prefix}/{dataset_type}.manifest"}
                }
            },
        )
    return {
        t: wait_until(
            lambda t=t: lv.describe_dataset(ProjectName=project, DatasetType=t)["DatasetDescription"],
            {"CREATE_COMPLETE", "CREATE_FAILED"},
            IMPORT_TIMEOUT_S,
        )
        for t in ("train", "test")
    }


def train(lv: Any, project: str, bucket: str) -> dict[str, Any]:
    created = lv.create_model(
        ProjectName=project,
        OutputConfig={"S3Location": {"Bucket": bucket, "Prefix": "output/"}},
        Tags=[{"Key": "line", "Value": "bottling-4"}],
    )["ModelMetadata"]
    assert created["Status"] == "TRAINING"
    return wait_until(
        lambda: lv.describe_model(ProjectName=project, ModelVersion=created["ModelVersion"])[
            "ModelDescription"
        ],
        {"TRAINED", "TRAINING_FAILED"},
        TRAIN_TIMEOUT_S,
    )


def host(lv: Any, project: str, version: str) -> None:
    lv.start_model(ProjectName=project, ModelVersion=version, MinInferenceUnits=1)
    hosted = wait_until(
        lambda: lv.describe_model(ProjectName=project, ModelVersion=version)["ModelDescription"],
        {"HOSTED", "HOSTING_FAILED"},
        IMPORT_TIMEOUT_S,
    )
    assert hosted["Status"] == "HOSTED", hosted["StatusMessage"]


def verdicts(lv: Any, project: str, version: str, images: list[tuple[Path, bool]]) -> list[dict[str, Any]]:
    return [
        lv.detect_anomalies(
            ProjectName=project, ModelVersion=version, Body=path.read_bytes(), ContentType="image/jpeg"
        )["DetectAnomalyResult"]
        for path, _ in images
    ]


# ---------------------------------------------------------------- no training needed (smoke)


@pytest.mark.smoke
def test_readme_snippet_runs_unchanged(lv: Any, s3_user: Any, tmp_path: Path) -> None:
    """The README's first boto3 lines: one endpoint for lookoutvision and s3."""
    name = "readme-" + os.urandom(3).hex()
    lv.create_project(ProjectName=name)
    s3_user.create_bucket(Bucket=name)
    image = tmp_path / "good.png"
    Image.new("RGB", (64, 64), "gray").save(image)
    s3_user.upload_file(str(image), name, "bottles/good.png")
    arn = lv.describe_project(ProjectName=name)["ProjectDescription"]["ProjectArn"]
    assert arn == f"arn:aws:lookoutvision:us-east-1:000000000000:project/{name}"
    assert s3_user.get_object(Bucket=name, Key="bottles/good.png")["Body"].read() == image.read_bytes()
    names = [p["ProjectName"] for p in lv.list_projects()["Projects"]]
    assert name in names
    lv.delete_project(ProjectName=name)
    with pytest.raises(lv.exceptions.ResourceNotFoundException):
        lv.describe_project(ProjectName=name)


@pytest.mark.smoke
def test_project_errors_come_back_as_l4v_errors(lv: Any) -> None:
    name = "errors-" + os.urandom(3).hex()
    lv.create_project(ProjectName=name)
    with pytest.raises(lv.exceptions.ConflictException):
        lv.create_project(ProjectName=name)
    with pytest.raises(lv.exceptions.ResourceNotFoundException) as missing:
        lv.describe_project(ProjectName=name + "-none")
    assert "does not exist" in str(missing.value)
    with pytest.raises(lv.exceptions.ValidationException):
        lv.create_project(ProjectName="bad name!")
    with pytest.raises(lv.exceptions.ResourceNotFoundException):
        lv.describe_dataset(ProjectName=name, DatasetType="train")
    lv.delete_project(ProjectName=name)


@pytest.mark.smoke
def test_unsigned_calls_and_the_backends_are_refused(sam_local: SamLocal) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(sam_local.endpoint_url + "/2020-11-20/projects", timeout=30)
    assert refused.value.code == 403  # as API Gateway answers an unsigned call to an IAM-authorized API
    assert json.loads(refused.value.read())["__type"] == "MissingAuthenticationTokenException"
    for name, call in (("dynamodb", "list_tables"), ("stepfunctions", "list_state_machines")):
        client = boto3.client(
            name,  # type: ignore[call-overload]
            endpoint_url=sam_local.endpoint_url,
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}),
            **USER_CREDENTIALS,
        )
        with pytest.raises(client.exceptions.ClientError) as denied:
            getattr(client, call)()
        assert denied.value.response["Error"]["Code"] == "AccessDeniedException"


@pytest.fixture(scope="module")
def imported(
    lv: Any, s3_user: Any, sam_local: SamLocal, tmp_path_factory: pytest.TempPathFactory, washers: Path
) -> Imported:
    suffix = os.urandom(3).hex()
    project, bucket = f"bottles-{suffix}", f"images-{suffix}"
    folder = tmp_path_factory.mktemp("bottle")
    test_images = washer_subset(washers, folder)
    s3_user.create_bucket(Bucket=bucket)
    upload_folder(sam_local, folder, bucket, "bottle", USER_CREDENTIALS["aws_access_key_id"])
    lv.create_project(ProjectName=project)
    described = import_datasets(lv, project, bucket, "bottle")
    for dataset_type, dataset in described.items():
        assert dataset["Status"] == "CREATE_COMPLETE", (dataset_type, dataset)
    return Imported(project, bucket, folder, test_images)


@pytest.mark.smoke
def test_dataset_import_from_a_manifest(lv: Any, imported: Imported) -> None:
    train = lv.describe_dataset(ProjectName=imported.project, DatasetType="train")["DatasetDescription"]
    assert train["ImageStats"] == {
        "Total": TRAIN_IMAGES,
        "Labeled": TRAIN_IMAGES,
        "Normal": TRAIN_IMAGES,
        "Anomaly": 0,
    }
    test = lv.describe_dataset(ProjectName=imported.project, DatasetType="test")["DatasetDescription"]
    anomalies = sum(count for kind, count in TEST_IMAGES.items() if kind != "good")
    assert test["ImageStats"]["Anomaly"] == anomalies
    entries = lv.list_dataset_entries(ProjectName=imported.project, DatasetType="test")["DatasetEntries"]
    assert len(entries) == sum(TEST_IMAGES.values())
    assert all(json.loads(entry)["source-ref"].startswith(f"s3://{imported.bucket}/") for entry in entries)


@pytest.mark.smoke
def test_a_manifest_naming_a_missing_image_fails_the_import(
    lv: Any, s3_user: Any, imported: Imported
) -> None:
    project = "broken-" + os.urandom(3).hex()
    line = {
        "source-ref": f"s3://{imported.bucket}/nowhere/missing.png",
        "anomaly-label": 0,
        "anomaly-label-metadata": {
            "job-name": "labeling-job/x",
            "class-name": "normal",
            "human-annotated": "yes",
            "creation-date": "2024-01-01T00:00:00",
            "type": "groundtruth/image-classification",
        },
    }
    s3_user.put_object(Bucket=imported.bucket, Key="broken/train.manifest", Body=json.dumps(line).encode())
    lv.create_project(ProjectName=project)
    lv.create_dataset(
        ProjectName=project,
        DatasetType="train",
        DatasetSource={
            "GroundTruthManifest": {"S3Object": {"Bucket": imported.bucket, "Key": "broken/train.manifest"}}
        },
    )
    failed = wait_until(
        lambda: lv.describe_dataset(ProjectName=project, DatasetType="train")["DatasetDescription"],
        {"CREATE_COMPLETE", "CREATE_FAILED"},
        IMPORT_TIMEOUT_S,
    )
    assert failed["Status"] == "CREATE_FAILED"
    assert "missing.png" in failed["StatusMessage"]


# ---------------------------------------------------------------- training, hosting, inference


@dataclass
class Trained:
    project: str
    version: str
    arn: str
    description: dict[str, Any]


@pytest.fixture(scope="module")
def trained(lv: Any, imported: Imported) -> Trained:
    model = train(lv, imported.project, imported.bucket)
    assert model["Status"] == "TRAINED", model["StatusMessage"]
    return Trained(imported.project, model["ModelVersion"], model["ModelArn"], model)


def test_training_in_the_training_image_reaches_trained(
    lv: Any, s3_user: Any, trained: Trained, imported: Imported
) -> None:
    performance = trained.description["Performance"]
    assert set(performance) == {"F1Score", "Recall", "Precision"}
    evaluation = trained.description["EvaluationManifest"]
    assert evaluation["Bucket"] == imported.bucket
    assert s3_user.head_object(Bucket=evaluation["Bucket"], Key=evaluation["Key"])["ContentLength"] > 0


def test_tags_on_the_model(lv: Any, trained: Trained) -> None:
    assert lv.list_tags_for_resource(ResourceArn=trained.arn)["Tags"] == [
        {"Key": "line", "Value": "bottling-4"}
    ]
    lv.tag_resource(ResourceArn=trained.arn, Tags=[{"Key": "site", "Value": "north"}])
    tags = {t["Key"]: t["Value"] for t in lv.list_tags_for_resource(ResourceArn=trained.arn)["Tags"]}
    assert tags == {"line": "bottling-4", "site": "north"}
    lv.untag_resource(ResourceArn=trained.arn, TagKeys=["line"])
    assert lv.list_tags_for_resource(ResourceArn=trained.arn)["Tags"] == [{"Key": "site", "Value": "north"}]
    with pytest.raises(lv.exceptions.ResourceNotFoundException):
        lv.list_tags_for_resource(ResourceArn=trained.arn.rsplit("/", 1)[0] + "/99")


@pytest.fixture(scope="module")
def hosted(lv: Any, trained: Trained, imported: Imported) -> Iterator[list[dict[str, Any]]]:
    host(lv, trained.project, trained.version)
    yield verdicts(lv, trained.project, trained.version, imported.test_images)


def test_detect_anomalies_on_real_images(
    lv: Any, trained: Trained, imported: Imported, hosted: list[dict[str, Any]]
) -> None:
    truth = [anomalous for _, anomalous in imported.test_images]
    found = [result["IsAnomalous"] for result in hosted]
    assert all(0.0 <= result["Confidence"] <= 1.0 for result in hosted)
    assert sum(a == b for a, b in zip(found, truth, strict=True)) >= len(truth) - 2, list(
        zip(found, truth, strict=True)
    )
    body = imported.test_images[0][0].read_bytes()
    with pytest.raises(lv.exceptions.ValidationException) as wrong_type:
        lv.detect_anomalies(
            ProjectName=trained.project, ModelVersion=trained.version, Body=body, ContentType="image/gif"
        )
    assert "content-type must be one of the following" in str(wrong_type.value)
    with pytest.raises(lv.exceptions.ValidationException) as cut:
        lv.detect_anomalies(
            ProjectName=trained.project,
            ModelVersion=trained.version,
            Body=body[: len(body) // 3],
            ContentType="image/jpeg",
        )
    assert "cannot be decoded" in str(cut.value)
    with pytest.raises(lv.exceptions.ResourceNotFoundException):
        lv.detect_anomalies(
            ProjectName=trained.project, ModelVersion="99", Body=body, ContentType="image/jpeg"
        )
    with pytest.raises(lv.exceptions.ConflictException):
        lv.delete_model(ProjectName=trained.project, ModelVersion=trained.version)


def test_the_container_trained_model_gives_the_verdicts_of_one_trained_by_serve(
    trained: Trained, imported: Imported, hosted: list[dict[str, Any]], tmp_path: Path
) -> None:
    """Same data, same requests, `openlookout serve` (in-process handlers, this machine's Python
    and torch) instead of Lambda containers (the training image): the same verdicts."""
    server = LocalServer(tmp_path / "serve", free_port())
    server.start()
    try:
        lv = boto3.client(
            "lookoutvision", endpoint_url=server.endpoint_url, region_name="us-east-1", **USER_CREDENTIALS
        )
        s3 = boto3.client("s3", endpoint_url=server.endpoint_url, region_name="us-east-1", **USER_CREDENTIALS)
        s3.create_bucket(Bucket=imported.bucket)
        upload_folder(
            server, imported.folder, imported.bucket, "bottle", USER_CREDENTIALS["aws_access_key_id"]
        )
        lv.create_project(ProjectName=imported.project)
        assert {
            d["Status"] for d in import_datasets(lv, imported.project, imported.bucket, "bottle").values()
        } == {"CREATE_COMPLETE"}
        model = train(lv, imported.project, imported.bucket)
        assert model["Status"] == "TRAINED", model["StatusMessage"]
        host(lv, imported.project, model["ModelVersion"])
        served = verdicts(lv, imported.project, model["ModelVersion"], imported.test_images)
    finally:
        server.stop()
    assert [r["IsAnomalous"] for r in served] == [r["IsAnomalous"] for r in hosted]
    assert model["Performance"] == trained.description["Performance"]
    differences = [abs(a["Confidence"] - b["Confidence"]) for a, b in zip(served, hosted, strict=True)]
    print(f"\nconfidence: largest difference {max(differences):.2e} over {len(differences)} images")
    assert max(differences) < 0.01


def test_stop_model_returns_it_to_trained(
    lv: Any, trained: Trained, imported: Imported, hosted: list[dict[str, Any]]
) -> None:
    lv.stop_model(ProjectName=trained.project, ModelVersion=trained.version)
    stopped = wait_until(
        lambda: lv.describe_model(ProjectName=trained.project, ModelVersion=trained.version)[
            "ModelDescription"
        ],
        {"TRAINED"},
        IMPORT_TIMEOUT_S,
    )
    assert stopped["Status"] == "TRAINED"
    with pytest.raises(lv.exceptions.ConflictException):
        lv.detect_anomalies(
            ProjectName=trained.project,
            ModelVersion=trained.version,
            Body=imported.test_images[0][0].read_bytes(),
            ContentType="image/jpeg",
        )
