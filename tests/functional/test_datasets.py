"""Dataset operations end to end in-process: API handlers, the dataset state machine's ASL run by
the local interpreter with the template's step functions, moto's DynamoDB and S3."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from PIL import Image

from openlookout.services import datasets
from openlookout.services.manifests import CLASSIFICATION_TYPE
from openlookout.storage.tables import DatasetEntryItem
from openlookout.workflows import dataset_import
from tests.functional.conftest import Caller, error_code, rejection
from tests.functional.workflows import StateMachines

asl = pytest.importorskip("openlookout.local.asl")

BUCKET = "user-images"


class Workflows(StateMachines):
    """The dataset state machine: each started execution runs at once, or is held."""

    def start(self, payload: dict[str, Any]) -> str:  # type: ignore[override]
        return super().start("DatasetStateMachine", payload)


@pytest.fixture
def workflows(call: Caller, monkeypatch: pytest.MonkeyPatch) -> Workflows:
    runner = Workflows()
    monkeypatch.setattr(datasets, "start_workflow", runner.start)
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    call("CreateProject", ProjectName="bottles")
    return runner


def image_bytes(kind: str = "PNG", size: tuple[int, int] = (96, 96), color: str = "gray") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, kind)
    return buffer.getvalue()


def put(key: str, body: bytes) -> str:
    boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=body)
    return f"s3://{BUCKET}/{key}"


def line(source: str, class_name: str | None = "normal", mask: str | None = None, defect: str = "dent"):
    data: dict[str, Any] = {"source-ref": source}
    if class_name is not None:
        data["anomaly-label"] = 1
        data["anomaly-label-metadata"] = {"class-name": class_name, "type": CLASSIFICATION_TYPE}
    if mask:
        data["anomaly-mask-ref"] = mask
        data["anomaly-mask-ref-metadata"] = {
            "internal-color-map": {
                "0": {"class-name": "BACKGROUND", "hex-color": "#ffffff", "confidence": 0.0},
                "1": {"class-name": defect, "hex-color": "#2ca02c", "confidence": 0.0},
            },
            "type": "groundtruth/semantic-segmentation",
        }
    return json.dumps(data)


def manifest(*lines: str, key: str = "manifests/train.manifest") -> dict[str, Any]:
    put(key, ("\n".join(lines) + "\n").encode())
    return {"GroundTruthManifest": {"S3Object": {"Bucket": BUCKET, "Key": key}}}


def sample_lines(normal: int = 3, anomaly: int = 2, unlabeled: int = 1, prefix: str = "img") -> list[str]:
    lines = [line(put(f"{prefix}/good-{i}.png", image_bytes())) for i in range(normal)]
    for i in range(anomaly):
        image = put(f"{prefix}/bad-{i}.jpg", image_bytes("JPEG"))
        mask = put(f"{prefix}/masks/bad-{i}.png", image_bytes(color="white"))
        lines.append(line(image, "anomaly", mask))
    lines += [line(put(f"{prefix}/other-{i}.png", image_bytes()), "cracked") for i in range(unlabeled)]
    return lines


def describe(call: Caller, dataset_type: str = "train") -> dict[str, Any]:
    return call("DescribeDataset", ProjectName="bottles", DatasetType=dataset_type)["DatasetDescription"]


def entries(call: Caller, dataset_type: str = "train", **filters: Any) -> list[dict[str, Any]]:
    listed = call("ListDatasetEntries", ProjectName="bottles", DatasetType=dataset_type, **filters)
    return [json.loads(entry) for entry in listed["DatasetEntries"]]


def create_failed_message(call: Caller, source: dict[str, Any]) -> str:
    call("CreateDataset", ProjectName="bottles", DatasetType="train", DatasetSource=source)
    described = describe(call)
    assert described["Status"] == "CREATE_FAILED", described
    assert described["ImageStats"]["Total"] == 0
    assert DatasetEntryItem.count() == 0  # nothing half-imported
    return str(described["StatusMessage"])


# ------------------------------------------------------------------ create


def test_create_from_manifest_imports_entries_and_counts_images(call: Caller, workflows: Workflows):
    created = call(
        "CreateDataset", ProjectName="bottles", DatasetType="train", DatasetSource=manifest(*sample_lines())
    )["DatasetMetadata"]
    assert created["DatasetType"] == "train"
    described = describe(call)
    assert described["Status"] == "CREATE_COMPLETE", described
    assert described["StatusMessage"] == "The dataset was created successfully."
    assert described["ImageStats"] == {"Total": 6, "Labeled": 5, "Normal": 3, "Anomaly": 2}
    assert workflows.outcomes == ["SUCCEEDED"]

    listed = entries(call)
    assert len(listed) == 6
    anomalies = entries(call, AnomalyClass="anomaly")
    assert {e["source-ref"] for e in anomalies} == {f"s3://{BUCKET}/img/bad-{i}.jpg" for i in range(2)}
    assert all(e["anomaly-label"] == 1 and "anomaly-mask-ref" in e for e in anomalies)
    assert all(e["anomaly-label"] == 0 for e in entries(call, AnomalyClass="normal"))
    assert [e["source-ref"] for e in entries(call, Labeled=False)] == [f"s3://{BUCKET}/img/other-0.png"]
    assert len(entries(call, Labeled=True)) == 5
    assert len(entries(call, SourceRefContains="good-")) == 3
    assert len(entries(call, SourceRefContains="GOOD-")) == 0  # case-sensitive, as documented

    project = call("DescribeProject", ProjectName="bottles")["ProjectDescription"]
    assert [(d["DatasetType"], d["Status"]) for d in project["Datasets"]] == [("train", "CREATE_COMPLETE")]
    # Staging objects are gone once the import is committed.
    staged = boto3.client("s3").list_objects_v2(Bucket="openlookout-artifacts").get("KeyCount", 0)
    assert staged == 0


def test_entries_page_with_filters_and_tokens(call: Caller, workflows: Workflows, monkeypatch):
    monkeypatch.setattr(dataset_import, "CHUNK_LINES", 4)  # several Map iterations
    call(
        "CreateDataset",
        ProjectName="bottles",
        DatasetType="train",
        DatasetSource=manifest(*sample_lines(normal=11, anomaly=3, unlabeled=0)),
    )
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        params: dict[str, Any] = {"MaxResults": 4, "AnomalyClass": "normal"}
        if token:
            params["NextToken"] = token
        page = call("ListDatasetEntries", ProjectName="bottles", DatasetType="train", **params)
        seen += [json.loads(e)["source-ref"] for e in page["DatasetEntries"]]
        pages += 1
        token = page.get("NextToken")
        if not token:
            break
    assert pages == 3 and len(seen) == len(set(seen)) == 11
    with pytest.raises(ClientError) as excinfo:  # a token belongs to its filters
        first = call("ListDatasetEntries", ProjectName="bottles", DatasetType="train", MaxResults=2)
        call(
            "ListDatasetEntries",
            ProjectName="bottles",
            DatasetType="train",
            MaxResults=2,
            AnomalyClass="normal",
            NextToken=first["NextToken"],
        )
    assert error_code(excinfo) == "ValidationException"


def test_created_before_and_after_filter_on_import_time(call: Caller, workflows: Workflows):
    from datetime import UTC, datetime, timedelta

    call("CreateDataset", ProjectName="bottles", DatasetType="train", DatasetSource=manifest(*sample_lines()))
    now = datetime.now(UTC)
    assert len(entries(call, BeforeCreationDate=now + timedelta(minutes=1))) == 6
    assert entries(call, AfterCreationDate=now + timedelta(minutes=1)) == []
    assert len(entries(call, AfterCreationDate=now - timedelta(minutes=5))) == 6


def test_create_without_source_is_an_empty_complete_dataset(call: Caller, workflows: Workflows):
    created = call("CreateDataset", ProjectName="bottles", DatasetType="test")["DatasetMetadata"]
    assert created["Status"] == "CREATE_COMPLETE"
    assert describe(call, "test")["ImageStats"] == {"Total": 0, "Labeled": 0, "Normal": 0, "Anomaly": 0}
    assert entries(call, "test") == []
    assert workflows.outcomes == []


def test_one_dataset_of_each_type(call: Caller, workflows: Workflows):
    call("CreateDataset", ProjectName="bottles", DatasetType="train")
    with pytest.raises(ClientError) as excinfo:
        call("CreateDataset", ProjectName="bottles", DatasetType="train")
    assert error_code(excinfo) == "ConflictException"
    assert excinfo.value.response["ResourceType"] == "DATASET"
    with pytest.raises(ClientError) as excinfo:
        call("CreateDataset", ProjectName="nope", DatasetType="train")
    assert error_code(excinfo) == "ResourceNotFoundException"
    assert excinfo.value.response["ResourceType"] == "PROJECT"


def test_missing_dataset_is_not_found(call: Caller, workflows: Workflows):
    for operation, extra in (
        ("DescribeDataset", {}),
        ("ListDatasetEntries", {}),
        ("DeleteDataset", {}),
        ("UpdateDatasetEntries", {"Changes": b"{}"}),
    ):
        with pytest.raises(ClientError) as excinfo:
            call(operation, ProjectName="bottles", DatasetType="test", **extra)
        assert error_code(excinfo) == "ResourceNotFoundException", operation
        assert excinfo.value.response["ResourceType"] == "DATASET"


# ------------------------------------------------------------------ refused manifests


def test_broken_json_names_the_line(call: Caller, workflows: Workflows):
    lines = sample_lines()
    lines[3] = lines[3][:-5]
    message = create_failed_message(call, manifest(*lines))
    assert message.startswith("Manifest line 4: the line is not valid JSON"), message


def test_missing_image_names_the_line_and_the_image(call: Caller, workflows: Workflows, monkeypatch):
    monkeypatch.setattr(dataset_import, "CHUNK_LINES", 2)
    lines = sample_lines()
    lines.insert(4, line(f"s3://{BUCKET}/img/gone.png"))
    lines.append(line(f"s3://{BUCKET}/img/gone-too.png"))
    message = create_failed_message(call, manifest(*lines))
    assert message == (
        f"Manifest line 5: the image s3://{BUCKET}/img/gone.png does not exist. (1 other line also failed.)"
    )
    assert workflows.outcomes == ["FAILED DatasetOperationFailed"]
    assert boto3.client("s3").list_objects_v2(Bucket="openlookout-artifacts").get("KeyCount", 0) == 0


def test_non_image_is_refused(call: Caller, workflows: Workflows):
    text = put("img/notes.png", b"this is not an image at all")
    message = create_failed_message(call, manifest(*sample_lines(), line(text)))
    assert message == f"Manifest line 7: the image {text} is not a PNG or JPEG image.", message


@pytest.mark.parametrize(
    ("size", "fragment"), [((32, 100), "is 32x100 pixels; images must be from 64x64 to 4096x4096 pixels")]
)
def test_image_dimensions_are_checked(call: Caller, workflows: Workflows, size, fragment):
    small = put("img/small.png", image_bytes(size=size))
    assert fragment in create_failed_message(call, manifest(line(small)))


def test_mask_must_be_a_png_of_the_images_size(call: Caller, workflows: Workflows):
    image = put("img/a.png", image_bytes())
    mask = put("img/a-mask.jpg", image_bytes("JPEG"))
    assert "the mask" in create_failed_message(call, manifest(line(image, "anomaly", mask)))


def test_line_without_source_ref(call: Caller, workflows: Workflows):
    lines = sample_lines()
    lines.insert(1, json.dumps({"anomaly-label": 1}))
    assert create_failed_message(call, manifest(*lines)) == "Manifest line 2: the line has no source-ref."


def test_missing_manifest(call: Caller, workflows: Workflows):
    source = {"GroundTruthManifest": {"S3Object": {"Bucket": BUCKET, "Key": "manifests/none.manifest"}}}
    message = create_failed_message(call, source)
    assert message == f"The manifest s3://{BUCKET}/manifests/none.manifest does not exist.", message


def test_empty_manifest(call: Caller, workflows: Workflows):
    put("manifests/empty.manifest", b"\n\n")
    source = {"GroundTruthManifest": {"S3Object": {"Bucket": BUCKET, "Key": "manifests/empty.manifest"}}}
    assert "has no JSON lines" in create_failed_message(call, source)


def test_images_in_two_buckets_are_refused(call: Caller, workflows: Workflows):
    boto3.client("s3").create_bucket(Bucket="elsewhere")
    lines = sample_lines()
    lines.append(line("s3://elsewhere/a.png"))
    assert "must be in one bucket" in create_failed_message(call, manifest(*lines))


def test_duplicate_source_ref_keeps_the_last_line(call: Caller, workflows: Workflows):
    image = put("img/dup.png", image_bytes())
    call(
        "CreateDataset",
        ProjectName="bottles",
        DatasetType="train",
        DatasetSource=manifest(line(image, "normal"), line(image, "anomaly")),
    )
    assert describe(call)["ImageStats"] == {"Total": 1, "Labeled": 1, "Normal": 0, "Anomaly": 1}


# ------------------------------------------------------------------ updates


def test_update_adds_and_replaces_by_source_ref(call: Caller, workflows: Workflows):
    call("CreateDataset", ProjectName="bottles", DatasetType="train", DatasetSource=manifest(*sample_lines()))
    replaced = line(f"s3://{BUCKET}/img/bad-0.jpg", "normal")  # no mask any more
    added = line(put("img/new.png", image_bytes()), "anomaly")
    status = call(
        "UpdateDatasetEntries",
        ProjectName="bottles",
        DatasetType="train",
        Changes=f"{replaced}\n{added}\n".encode(),
    )
    assert status == {"Status": "UPDATE_IN_PROGRESS", "ResponseMetadata": status["ResponseMetadata"]}
    described = describe(call)
    assert described["Status"] == "UPDATE_COMPLETE", described
    assert described["ImageStats"] == {"Total": 7, "Labeled": 6, "Normal": 4, "Anomaly": 2}
    (entry,) = entries(call, SourceRefContains="bad-0")
    assert entry["anomaly-label"] == 0 and "anomaly-mask-ref" not in entry
    # Exactly one generation of entries is left once the update is committed.
    assert DatasetEntryItem.count() == 7


def test_failed_update_rolls_back_to_exactly_the_old_entries(call: Caller, workflows: Workflows):
    call("CreateDataset", ProjectName="bottles", DatasetType="train", DatasetSource=manifest(*sample_lines()))
    before, stats_before = entries(call), describe(call)["ImageStats"]
    changes = "\n".join(
        [
            line(f"s3://{BUCKET}/img/good-0.png", "anomaly"),  # would replace
            line(put("img/new.png", image_bytes()), "normal"),  # would add
            line(f"s3://{BUCKET}/img/missing.png", "normal"),  # fails
        ]
    )
    call("UpdateDatasetEntries", ProjectName="bottles", DatasetType="train", Changes=changes.encode())
    described = describe(call)
    assert described["Status"] == "UPDATE_FAILED_ROLLBACK_COMPLETE", described
    assert described["StatusMessage"].startswith(
        f"Changes line 3: the image s3://{BUCKET}/img/missing.png does not exist."
    )
    assert "rolled back" in described["StatusMessage"]
    assert entries(call) == before and described["ImageStats"] == stats_before
    assert DatasetEntryItem.count() == len(before)
    # A rolled-back dataset takes the next update.
    call(
        "UpdateDatasetEntries",
        ProjectName="bottles",
        DatasetType="train",
        Changes=line(put("img/new2.png", image_bytes())).encode(),
    )
    assert describe(call)["Status"] == "UPDATE_COMPLETE"


@pytest.mark.parametrize("changes", [b"not json\n", b'{"no":"source-ref"}', b"  \n"])
def test_invalid_changes_roll_back(call: Caller, workflows: Workflows, changes: bytes):
    call("CreateDataset", ProjectName="bottles", DatasetType="train", DatasetSource=manifest(*sample_lines()))
    call("UpdateDatasetEntries", ProjectName="bottles", DatasetType="train", Changes=changes)
    assert describe(call)["Status"] == "UPDATE_FAILED_ROLLBACK_COMPLETE"
    assert len(entries(call)) == 6


def test_update_images_must_stay_in_the_datasets_bucket(call: Caller, workflows: Workflows):
    call("CreateDataset", ProjectName="bottles", DatasetType="train", DatasetSource=manifest(*sample_lines()))
    call(
        "UpdateDatasetEntries",
        ProjectName="bottles",
        DatasetType="train",
        Changes=line("s3://another-bucket/a.png").encode(),
    )
    described = describe(call)
    assert described["Status"] == "UPDATE_FAILED_ROLLBACK_COMPLETE"
    assert f"the bucket {BUCKET} of the dataset's other images" in described["StatusMessage"]


def test_update_of_an_empty_dataset(call: Caller, workflows: Workflows):
    call("CreateDataset", ProjectName="bottles", DatasetType="test")
    call(
        "UpdateDatasetEntries",
        ProjectName="bottles",
        DatasetType="test",
        Changes="\n".join(sample_lines()).encode(),
    )
    assert describe(call, "test")["ImageStats"]["Total"] == 6


# ------------------------------------------------------------------ concurrency and deletion


def test_no_second_operation_while_one_is_in_progress(call: Caller, workflows: Workflows):
    workflows.hold = True
    call("CreateDataset", ProjectName="bottles", DatasetType="train", DatasetSource=manifest(*sample_lines()))
    assert describe(call)["Status"] == "CREATE_IN_PROGRESS"
    assert entries(call) == []
    for operation, extra in (
        ("UpdateDatasetEntries", {"Changes": line("s3://user-images/x.png").encode()}),
        ("DeleteDataset", {}),
        ("CreateDataset", {}),
    ):
        with pytest.raises(ClientError) as excinfo:
            call(operation, ProjectName="bottles", DatasetType="train", **extra)
        assert error_code(excinfo) == "ConflictException", operation
        assert excinfo.value.response["ResourceType"] == "DATASET"
    workflows.release()
    assert describe(call)["Status"] == "CREATE_COMPLETE"

    workflows.hold = True
    call(
        "UpdateDatasetEntries",
        ProjectName="bottles",
        DatasetType="train",
        Changes=line(put("img/new.png", image_bytes())).encode(),
    )
    assert describe(call)["Status"] == "UPDATE_IN_PROGRESS"
    assert len(entries(call)) == 6  # readers see the current generation meanwhile
    assert (
        rejection(call, "UpdateDatasetEntries", ProjectName="bottles", DatasetType="train", Changes=b"{}")
        == "ConflictException"
    )
    workflows.release()
    assert describe(call)["ImageStats"]["Total"] == 7


def test_delete_project_refused_while_it_has_datasets(call: Caller, workflows: Workflows):
    call("CreateDataset", ProjectName="bottles", DatasetType="train", DatasetSource=manifest(*sample_lines()))
    call("CreateDataset", ProjectName="bottles", DatasetType="test")
    with pytest.raises(ClientError) as excinfo:
        call("DeleteProject", ProjectName="bottles")
    assert error_code(excinfo) == "ConflictException"
    assert excinfo.value.response["ResourceType"] == "PROJECT"
    assert "train" in excinfo.value.response["Error"]["Message"]

    call("DeleteDataset", ProjectName="bottles", DatasetType="train")
    call("DeleteDataset", ProjectName="bottles", DatasetType="test")
    assert DatasetEntryItem.count() == 0  # purged by the state machine
    assert call("DescribeProject", ProjectName="bottles")["ProjectDescription"]["Datasets"] == []
    call("DeleteProject", ProjectName="bottles")


def test_a_dataset_can_be_created_again_after_deletion(call: Caller, workflows: Workflows):
    call("CreateDataset", ProjectName="bottles", DatasetType="train", DatasetSource=manifest(*sample_lines()))
    call("DeleteDataset", ProjectName="bottles", DatasetType="train")
    call(
        "CreateDataset",
        ProjectName="bottles",
        DatasetType="train",
        DatasetSource=manifest(*sample_lines(normal=1, anomaly=0, unlabeled=0)),
    )
    assert describe(call)["ImageStats"]["Total"] == 1


def test_create_failed_dataset_must_be_deleted_before_an_update(call: Caller, workflows: Workflows):
    create_failed_message(call, manifest("{broken"))
    with pytest.raises(ClientError) as excinfo:
        call("UpdateDatasetEntries", ProjectName="bottles", DatasetType="train", Changes=b"{}")
    assert error_code(excinfo) == "ConflictException"
    assert re.search("CREATE_FAILED; delete it", excinfo.value.response["Error"]["Message"])


def test_internal_errors_end_in_a_failed_status(call: Caller, workflows: Workflows, monkeypatch):
    def broken(_: Any) -> Callable[..., Any]:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(dataset_import, "count_entries", broken)
    message = create_failed_message(call, manifest(*sample_lines()))
    assert message.startswith("An internal error stopped the operation (RuntimeError: disk on fire)")


def test_example_images_through_the_folder_tool(call: Caller, workflows: Workflows, washers: Path):
    from openlookout.cli.manifest import from_folder
    from tests.example_images import TEST_ANOMALY, TEST_NORMAL, TRAIN_ANOMALY, TRAIN_NORMAL, WASHERS

    from_folder(boto3.client("s3"), washers, BUCKET, "washers")
    for dataset_type in ("train", "test"):
        key = f"washers/{dataset_type}.manifest"
        source = {"GroundTruthManifest": {"S3Object": {"Bucket": BUCKET, "Key": key}}}
        call("CreateDataset", ProjectName="bottles", DatasetType=dataset_type, DatasetSource=source)
    train, test = describe(call, "train")["ImageStats"], describe(call, "test")["ImageStats"]
    total = TRAIN_NORMAL + TRAIN_ANOMALY
    assert train == {"Total": total, "Labeled": total, "Normal": TRAIN_NORMAL, "Anomaly": TRAIN_ANOMALY}
    total = TEST_NORMAL + TEST_ANOMALY
    assert test == {"Total": total, "Labeled": total, "Normal": TEST_NORMAL, "Anomaly": TEST_ANOMALY}
    masked = entries(call, "test", AnomalyClass="anomaly", SourceRefContains="scratch", MaxResults=100)
    assert len(masked) == WASHERS["per_defect"] and all("anomaly-mask-ref" in e for e in masked)


def test_an_interrupted_import_or_update_is_repaired(call: Caller, workflows: Workflows):
    from tests.functional.workflows import function_module, lambda_context, status_change

    recovery = function_module("WorkflowRecoveryFunction")

    def interrupt() -> None:
        _name, payload = workflows.held.pop()
        workflows.hold = False
        event = status_change("DatasetStateMachine", "arn:x", payload, "FAILED", "OpenLookout.Interrupted")
        assert recovery.lambda_handler(event, lambda_context("WorkflowRecoveryFunction")) == {
            "Repaired": True
        }

    workflows.hold = True
    call("CreateDataset", ProjectName="bottles", DatasetType="train", DatasetSource=manifest(*sample_lines()))
    interrupt()
    failed = describe(call)
    assert failed["Status"] == "CREATE_FAILED"
    assert "OpenLookout.Interrupted" in failed["StatusMessage"]

    call("DeleteDataset", ProjectName="bottles", DatasetType="train")
    call("CreateDataset", ProjectName="bottles", DatasetType="train", DatasetSource=manifest(*sample_lines()))
    before = entries(call)
    workflows.hold = True
    call(
        "UpdateDatasetEntries",
        ProjectName="bottles",
        DatasetType="train",
        Changes=line(put("img/late.png", image_bytes())).encode(),
    )
    interrupt()
    assert describe(call)["Status"] == "UPDATE_FAILED_ROLLBACK_COMPLETE"
    assert entries(call) == before
