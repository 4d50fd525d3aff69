"""Datasets through plain boto3 against the local service: real manifests, real images, the
dataset state machine run by the local Step Functions from statemachines/dataset_import.asl.json."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from PIL import Image

from tests.contract.conftest import ROOT, Service
from tests.example_images import TEST_ANOMALY, TEST_NORMAL, TRAIN_ANOMALY, TRAIN_NORMAL, WASHERS

pytestmark = pytest.mark.contract

SETTLE_TIMEOUT_S = 180


def wait_settled(lookoutvision: Any, project: str, dataset_type: str = "train") -> dict[str, Any]:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        description: dict[str, Any] = lookoutvision.describe_dataset(
            ProjectName=project, DatasetType=dataset_type
        )["DatasetDescription"]
        if not description["Status"].endswith("_IN_PROGRESS"):
            return description
        assert time.monotonic() < deadline, description
        time.sleep(0.2)


def all_entries(lookoutvision: Any, project: str, dataset_type: str = "train", **filters: Any) -> list[dict]:
    paginator = lookoutvision.get_paginator("list_dataset_entries")
    pages = paginator.paginate(ProjectName=project, DatasetType=dataset_type, **filters)
    return [json.loads(entry) for page in pages for entry in page["DatasetEntries"]]


def classification_line(uri: str, class_name: str = "normal") -> str:
    return json.dumps(
        {
            "source-ref": uri,
            "anomaly-label": 1 if class_name == "anomaly" else 0,
            "anomaly-label-metadata": {
                "class-name": class_name,
                "type": "groundtruth/image-classification",
                "human-annotated": "yes",
                "job-name": "labeling-job/contract",
            },
        }
    )


class Images:
    """A bucket with a few of the generated example images (tests/example_images.py)."""

    def __init__(self, s3: Any, bucket: str, washers: Path) -> None:
        self.s3, self.bucket, self.washers = s3, bucket, washers
        s3.create_bucket(Bucket=bucket)

    def put(self, key: str, body: bytes) -> str:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        return f"s3://{self.bucket}/{key}"

    def copy(self, relative: str, key: str) -> str:
        """The example image at `relative` (e.g. train/good/000.jpg), uploaded as `key`."""
        return self.put(key, (self.washers / relative).read_bytes())

    def normal_lines(self, count: int, prefix: str = "good") -> list[str]:
        return [
            classification_line(self.copy(f"train/good/{i:03d}.jpg", f"{prefix}/{i:03d}.jpg"))
            for i in range(count)
        ]

    def manifest(self, lines: list[str], key: str = "train.manifest") -> dict[str, Any]:
        self.put(key, ("\n".join(lines) + "\n").encode())
        return {"GroundTruthManifest": {"S3Object": {"Bucket": self.bucket, "Key": key}}}


@pytest.fixture
def images(s3: Any, unique_name: Callable[[str], str], washers: Path) -> Images:
    return Images(s3, unique_name("images"), washers)


@pytest.fixture
def project(lookoutvision: Any, unique_name: Callable[[str], str]) -> str:
    name = unique_name("datasets")
    lookoutvision.create_project(ProjectName=name)
    return name


def create_and_wait(
    lookoutvision: Any, project: str, source: dict[str, Any], dataset_type: str = "train"
) -> dict:
    created = lookoutvision.create_dataset(
        ProjectName=project, DatasetType=dataset_type, DatasetSource=source
    )
    assert created["DatasetMetadata"]["Status"] == "CREATE_IN_PROGRESS"
    assert created["DatasetMetadata"]["StatusMessage"] == "The dataset is creating."
    return wait_settled(lookoutvision, project, dataset_type)


# ------------------------------------------------------------------ a folder in MVTec AD layout


def test_mvtec_layout_from_folder_to_datasets(
    service: Service,
    lookoutvision: Any,
    s3: Any,
    project: str,
    unique_name: Callable[[str], str],
    washers: Path,
):
    if not getattr(service, "is_local", False):
        pytest.skip("the folder tool needs the local S3 endpoint")
    bucket = unique_name("washers")
    s3.create_bucket(Bucket=bucket)
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": service.endpoint_url,
        "AWS_ACCESS_KEY_ID": "contract",
        "AWS_SECRET_ACCESS_KEY": "contract",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    tool = subprocess.run(
        [sys.executable, "-m", "openlookout.cli", "manifest", "from-folder", str(washers),
         "--bucket", bucket, "--prefix", "washers"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert tool.returncode == 0, tool.stderr
    train_total, test_total = TRAIN_NORMAL + TRAIN_ANOMALY, TEST_NORMAL + TEST_ANOMALY
    assert tool.stdout.splitlines() == [
        f"s3://{bucket}/washers/train.manifest: {train_total} images "
        f"({TRAIN_NORMAL} normal, {TRAIN_ANOMALY} anomaly, {TRAIN_ANOMALY} with masks)",
        f"s3://{bucket}/washers/test.manifest: {test_total} images "
        f"({TEST_NORMAL} normal, {TEST_ANOMALY} anomaly, {TEST_ANOMALY} with masks)",
    ]

    for dataset_type in ("train", "test"):
        source = {
            "GroundTruthManifest": {"S3Object": {"Bucket": bucket, "Key": f"washers/{dataset_type}.manifest"}}
        }
        lookoutvision.create_dataset(ProjectName=project, DatasetType=dataset_type, DatasetSource=source)
    train = wait_settled(lookoutvision, project, "train")
    test = wait_settled(lookoutvision, project, "test")
    assert train["Status"] == "CREATE_COMPLETE", train
    assert train["StatusMessage"] == "The dataset was created successfully."
    assert train["ImageStats"] == {
        "Total": train_total, "Labeled": train_total, "Normal": TRAIN_NORMAL, "Anomaly": TRAIN_ANOMALY
    }  # fmt: skip
    assert test["Status"] == "CREATE_COMPLETE", test
    assert test["ImageStats"] == {
        "Total": test_total, "Labeled": test_total, "Normal": TEST_NORMAL, "Anomaly": TEST_ANOMALY
    }  # fmt: skip
    assert test["LastUpdatedTimestamp"] >= test["CreationTimestamp"]

    # Entries: filters and pages, as the L4V export example reads them.
    anomalies = all_entries(
        lookoutvision, project, "test", AnomalyClass="anomaly", PaginationConfig={"PageSize": 10}
    )
    assert len(anomalies) == TEST_ANOMALY == len({e["source-ref"] for e in anomalies})
    assert all(e["anomaly-label"] == 1 and e["anomaly-mask-ref"].endswith(".png") for e in anomalies)
    color_map = anomalies[0]["anomaly-mask-ref-metadata"]["internal-color-map"]
    assert color_map["0"]["class-name"] == "BACKGROUND"
    assert {e["anomaly-mask-ref-metadata"]["internal-color-map"]["1"]["class-name"] for e in anomalies} == {
        "scratch", "dent", "stain"
    }  # fmt: skip
    page = lookoutvision.list_dataset_entries(ProjectName=project, DatasetType="test", MaxResults=7)
    assert len(page["DatasetEntries"]) == 7 and page["NextToken"]
    assert len(all_entries(lookoutvision, project, "test", AnomalyClass="normal")) == TEST_NORMAL
    assert (
        len(all_entries(lookoutvision, project, "test", SourceRefContains="scratch/"))
        == WASHERS["per_defect"]
    )
    assert all_entries(lookoutvision, project, "test", Labeled=False) == []
    assert len(all_entries(lookoutvision, project, "train", Labeled=True)) == train_total

    datasets = lookoutvision.describe_project(ProjectName=project)["ProjectDescription"]["Datasets"]
    assert sorted((d["DatasetType"], d["Status"]) for d in datasets) == [
        ("test", "CREATE_COMPLETE"), ("train", "CREATE_COMPLETE")
    ]  # fmt: skip

    # DeleteProject waits for the datasets to go.
    with pytest.raises(ClientError) as excinfo:
        lookoutvision.delete_project(ProjectName=project)
    assert excinfo.value.response["Error"]["Code"] == "ConflictException"
    assert excinfo.value.response["ResourceId"] == project
    assert excinfo.value.response["ResourceType"] == "PROJECT"
    for dataset_type in ("train", "test"):
        lookoutvision.delete_dataset(ProjectName=project, DatasetType=dataset_type)
    with pytest.raises(ClientError) as excinfo:
        lookoutvision.describe_dataset(ProjectName=project, DatasetType="train")
    assert excinfo.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert excinfo.value.response["ResourceType"] == "DATASET"
    lookoutvision.delete_project(ProjectName=project)


# ------------------------------------------------------------------ refused manifests


def test_classification_and_segmentation_lines(lookoutvision: Any, images: Images, project: str):
    mask = Image.new("RGBA", (256, 256), (0, 0, 0, 0))  # AWS's getting-started style: transparent + colour
    mask.paste((0x23, 0xA4, 0x36, 255), (50, 50, 100, 100))
    buffer = io.BytesIO()
    mask.save(buffer, "PNG")
    segmentation = json.loads(
        classification_line(images.copy("test/scratch/000.jpg", "bad/000.jpg"), "anomaly")
    )
    segmentation["anomaly-mask-ref"] = images.put("masks/000.png", buffer.getvalue())
    segmentation["anomaly-mask-ref-metadata"] = {
        "internal-color-map": {"0": {"class-name": "cracked", "hex-color": "#23A436"}},  # no BACKGROUND entry
        "type": "groundtruth/semantic-segmentation",
        "human-annotated": "yes",
        "creation-date": "Mon Aug 22 2022 13:52:52 GMT-0700 (Pacific Daylight Time)",
    }
    unlabeled = classification_line(images.copy("train/good/010.jpg", "other/010.jpg"), "maybe")
    lines = [*images.normal_lines(3), json.dumps(segmentation), unlabeled]
    described = create_and_wait(lookoutvision, project, images.manifest(lines))
    assert described["Status"] == "CREATE_COMPLETE", described
    assert described["ImageStats"] == {"Total": 5, "Labeled": 4, "Normal": 3, "Anomaly": 1}
    (entry,) = all_entries(lookoutvision, project, AnomalyClass="anomaly")
    assert entry["anomaly-mask-ref-metadata"]["internal-color-map"]["0"]["class-name"] == "cracked"
    (other,) = all_entries(lookoutvision, project, Labeled=False)
    assert other["source-ref"].endswith("other/010.jpg")


def _refused(lookoutvision: Any, project: str, source: dict[str, Any]) -> str:
    described = create_and_wait(lookoutvision, project, source)
    assert described["Status"] == "CREATE_FAILED", described
    assert described["ImageStats"]["Total"] == 0
    assert all_entries(lookoutvision, project) == []
    return str(described["StatusMessage"])


def test_broken_json(lookoutvision: Any, images: Images, project: str):
    lines = images.normal_lines(3)
    lines[1] = lines[1][:-1]
    message = _refused(lookoutvision, project, images.manifest(lines))
    assert message.startswith("Manifest line 2: the line is not valid JSON"), message


def test_missing_image(lookoutvision: Any, images: Images, project: str):
    missing = f"s3://{images.bucket}/good/does-not-exist.jpg"
    lines = [*images.normal_lines(3), classification_line(missing)]
    message = _refused(lookoutvision, project, images.manifest(lines))
    assert message == f"Manifest line 4: the image {missing} does not exist.", message


def test_non_image(lookoutvision: Any, images: Images, project: str):
    text = images.put("good/readme.jpg", b"not a picture, just text with a .jpg name")
    mask_as_image = images.copy("ground_truth/scratch/000_mask.png", "good/mask.png")
    lines = [*images.normal_lines(2), classification_line(text), classification_line(mask_as_image)]
    message = _refused(lookoutvision, project, images.manifest(lines))
    assert message.startswith(f"Manifest line 3: the image {text} is not a PNG or JPEG image."), message


def test_line_without_source_ref(lookoutvision: Any, images: Images, project: str):
    lines = images.normal_lines(2)
    lines.append(json.dumps({"anomaly-label": 1, "anomaly-label-metadata": {"class-name": "anomaly"}}))
    message = _refused(lookoutvision, project, images.manifest(lines))
    assert message == "Manifest line 3: the line has no source-ref.", message


def test_missing_manifest(lookoutvision: Any, images: Images, project: str):
    source = {"GroundTruthManifest": {"S3Object": {"Bucket": images.bucket, "Key": "nothing/here.manifest"}}}
    message = _refused(lookoutvision, project, source)
    assert message == f"The manifest s3://{images.bucket}/nothing/here.manifest does not exist.", message


def test_image_too_small(lookoutvision: Any, images: Images, project: str):
    buffer = io.BytesIO()
    Image.new("RGB", (48, 48)).save(buffer, "PNG")
    tiny = images.put("tiny.png", buffer.getvalue())
    message = _refused(lookoutvision, project, images.manifest([classification_line(tiny)]))
    assert "is 48x48 pixels; images must be from 64x64 to 4096x4096 pixels" in message, message


def test_empty_image_fails_fast_with_its_own_message(lookoutvision: Any, images: Images, project: str):
    empty = images.put("empty.png", b"")
    started = time.monotonic()
    message = _refused(lookoutvision, project, images.manifest([classification_line(empty)]))
    assert message == f"Manifest line 1: the image {empty} is empty (0 bytes).", message
    assert time.monotonic() - started < 15, "an empty object must not wait for retries"


def test_decompression_bomb_is_refused_from_its_header(lookoutvision: Any, images: Images, project: str):
    from tests.unit.test_image_checks import bomb_png

    bomb = images.put("bomb.png", bomb_png(20000, 20000))
    message = _refused(lookoutvision, project, images.manifest([classification_line(bomb)]))
    assert "20000x20000 pixels" in message, message


# ------------------------------------------------------------------ updates and rules


def test_update_replaces_by_source_ref_and_adds(lookoutvision: Any, images: Images, project: str):
    create_and_wait(lookoutvision, project, images.manifest(images.normal_lines(4)))
    replaced = classification_line(f"s3://{images.bucket}/good/001.jpg", "anomaly")
    added = classification_line(images.copy("test/good/000.jpg", "new/000.jpg"), "normal")
    response = lookoutvision.update_dataset_entries(
        ProjectName=project, DatasetType="train", Changes=f"{replaced}\n{added}\n".encode()
    )
    assert response["Status"] == "UPDATE_IN_PROGRESS"
    described = wait_settled(lookoutvision, project)
    assert described["Status"] == "UPDATE_COMPLETE", described
    assert described["ImageStats"] == {"Total": 5, "Labeled": 5, "Normal": 4, "Anomaly": 1}
    (entry,) = all_entries(lookoutvision, project, AnomalyClass="anomaly")
    assert entry["source-ref"] == f"s3://{images.bucket}/good/001.jpg"


def test_update_that_fails_rolls_back(lookoutvision: Any, images: Images, project: str):
    create_and_wait(lookoutvision, project, images.manifest(images.normal_lines(4)))
    before = all_entries(lookoutvision, project)
    changes = "\n".join(
        [
            classification_line(f"s3://{images.bucket}/good/000.jpg", "anomaly"),
            classification_line(images.copy("test/good/001.jpg", "new/001.jpg")),
            "{not json",
        ]
    )
    lookoutvision.update_dataset_entries(ProjectName=project, DatasetType="train", Changes=changes.encode())
    described = wait_settled(lookoutvision, project)
    assert described["Status"] == "UPDATE_FAILED_ROLLBACK_COMPLETE", described
    assert described["StatusMessage"].startswith("Changes line 3: the line is not valid JSON")
    assert described["ImageStats"] == {"Total": 4, "Labeled": 4, "Normal": 4, "Anomaly": 0}
    assert all_entries(lookoutvision, project) == before

    missing = classification_line(f"s3://{images.bucket}/new/missing.jpg")
    lookoutvision.update_dataset_entries(ProjectName=project, DatasetType="train", Changes=missing.encode())
    described = wait_settled(lookoutvision, project)
    assert described["Status"] == "UPDATE_FAILED_ROLLBACK_COMPLETE"
    assert "does not exist" in described["StatusMessage"]
    assert all_entries(lookoutvision, project) == before


def test_no_second_operation_while_one_is_in_progress(lookoutvision: Any, images: Images, project: str):
    lines = images.normal_lines(60)
    lookoutvision.create_dataset(
        ProjectName=project, DatasetType="train", DatasetSource=images.manifest(lines)
    )
    try:
        with pytest.raises(ClientError) as excinfo:
            lookoutvision.update_dataset_entries(
                ProjectName=project, DatasetType="train", Changes=lines[0].encode()
            )
        assert excinfo.value.response["Error"]["Code"] == "ConflictException"
        assert excinfo.value.response["ResourceType"] == "DATASET"
        with pytest.raises(ClientError) as excinfo:
            lookoutvision.delete_dataset(ProjectName=project, DatasetType="train")
        assert excinfo.value.response["Error"]["Code"] == "ConflictException"
    finally:
        assert wait_settled(lookoutvision, project)["Status"] == "CREATE_COMPLETE"


def test_one_dataset_per_type_and_empty_datasets(lookoutvision: Any, project: str):
    created = lookoutvision.create_dataset(ProjectName=project, DatasetType="test")["DatasetMetadata"]
    assert created["Status"] == "CREATE_COMPLETE"
    with pytest.raises(ClientError) as excinfo:
        lookoutvision.create_dataset(ProjectName=project, DatasetType="test")
    assert excinfo.value.response["Error"]["Code"] == "ConflictException"
    described = lookoutvision.describe_dataset(ProjectName=project, DatasetType="test")["DatasetDescription"]
    assert described["ImageStats"] == {"Total": 0, "Labeled": 0, "Normal": 0, "Anomaly": 0}
    with pytest.raises(ClientError) as excinfo:
        lookoutvision.delete_project(ProjectName=project)
    assert excinfo.value.response["Error"]["Code"] == "ConflictException"
    lookoutvision.delete_dataset(ProjectName=project, DatasetType="test")
    lookoutvision.delete_project(ProjectName=project)


# ------------------------------------------------------------------ L4V's training-set limit


@pytest.mark.slow
@pytest.mark.timeout(1800)  # ~2 min of S3 copies, then the import (~3.5 min with DynamoDB Local on disk)
def test_a_16000_line_manifest_imports(lookoutvision: Any, s3: Any, images: Images, project: str):
    """16,000 distinct images (server-side copies of a few MVTec files) in one manifest."""
    from concurrent.futures import ThreadPoolExecutor

    sources = [images.copy(f"train/good/{i:03d}.jpg", f"seed/{i:03d}.jpg") for i in range(16)]

    def copy(index: int) -> str:
        key = f"many/{index:05d}.jpg"
        source_key = sources[index % 16].split("/", 3)[3]
        s3.copy_object(Bucket=images.bucket, Key=key, CopySource={"Bucket": images.bucket, "Key": source_key})
        return classification_line(f"s3://{images.bucket}/{key}", "anomaly" if index % 10 == 0 else "normal")

    with ThreadPoolExecutor(16) as pool:
        lines = list(pool.map(copy, range(16_000)))
    started = time.monotonic()
    lookoutvision.create_dataset(
        ProjectName=project, DatasetType="train", DatasetSource=images.manifest(lines)
    )
    deadline = started + 1200
    while True:
        described = lookoutvision.describe_dataset(ProjectName=project, DatasetType="train")[
            "DatasetDescription"
        ]
        if described["Status"] != "CREATE_IN_PROGRESS" or time.monotonic() > deadline:
            break
        time.sleep(2)
    print(f"16,000-line import: {time.monotonic() - started:.0f} s")
    assert described["Status"] == "CREATE_COMPLETE", described
    assert described["ImageStats"] == {"Total": 16_000, "Labeled": 16_000, "Normal": 14_400, "Anomaly": 1_600}
