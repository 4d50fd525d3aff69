"""Models end to end in-process: API handlers, the training and hosting state machines run by
the local ASL interpreter with the template's functions, the real engine, moto's DynamoDB and S3."""

from __future__ import annotations

import io
import json
import threading
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.exceptions import ClientError
from PIL import Image, ImageDraw

from openlookout.services import datasets, models
from openlookout.services.executions import StateMachine
from openlookout.storage.tables import DatasetEntryItem, DatasetItem, ImageStats, ModelItem
from tests.functional.conftest import Caller, error_code, rejection
from tests.functional.workflows import StateMachines

pytest.importorskip("openlookout.local.asl")

BUCKET = "factory-images"
PROJECT = "widgets"
STATE_MACHINE_FOR_ENV = {
    StateMachine.TRAINING: "TrainingStateMachine",
    StateMachine.HOSTING: "HostingStateMachine",
}


def texture(seed: int, defect: bool = False, size: int = 96) -> tuple[bytes, bytes | None]:
    """A woven texture; a defect is a dark blot. Returns (PNG, mask PNG or None)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    base = 128 + 40 * np.sin(x / 3.0) * np.cos(y / 3.0) + rng.normal(0, 4, (size, size))
    image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).convert("RGB")
    mask_bytes = None
    if defect:
        cx, cy = rng.integers(25, size - 25, 2)
        draw = ImageDraw.Draw(image)
        draw.ellipse((cx - 10, cy - 8, cx + 10, cy + 8), fill=(20, 20, 20))
        mask = Image.new("RGB", (size, size), "white")
        ImageDraw.Draw(mask).ellipse((cx - 10, cy - 8, cx + 10, cy + 8), fill="#2ca02c")
        buffer = io.BytesIO()
        mask.save(buffer, "PNG")
        mask_bytes = buffer.getvalue()
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue(), mask_bytes


def _put(key: str, body: bytes) -> str:
    boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=body)
    return f"s3://{BUCKET}/{key}"


def _entry(source: str, anomalous: bool, mask: str | None) -> str:
    data: dict[str, Any] = {
        "source-ref": source,
        "anomaly-label": int(anomalous),
        "anomaly-label-metadata": {
            "class-name": "anomaly" if anomalous else "normal",
            "type": "groundtruth/image-classification",
        },
    }
    if mask:
        data["anomaly-mask-ref"] = mask
        data["anomaly-mask-ref-metadata"] = {
            "internal-color-map": {
                "0": {"class-name": "BACKGROUND", "hex-color": "#ffffff"},
                "1": {"class-name": "blot", "hex-color": "#2ca02c"},
            },
            "type": "groundtruth/semantic-segmentation",
        }
    return json.dumps(data)


def make_dataset(
    dataset_type: str, normal: int, anomalous: int, seed: int = 0, status: str = "CREATE_COMPLETE"
):
    generation = "g1"
    key = datasets.entries_key(PROJECT, dataset_type, generation)
    for i in range(normal + anomalous):
        defect = i >= normal
        image, mask = texture(seed + i, defect)
        source = _put(f"{dataset_type}/{i}.png", image)
        mask_ref = _put(f"{dataset_type}/masks/{i}.png", mask) if mask else None
        DatasetEntryItem(
            key,
            source,
            entry=_entry(source, defect, mask_ref),
            labeled=True,
            anomaly_class="anomaly" if defect else "normal",
        ).save()
    DatasetItem(
        PROJECT,
        dataset_type,
        status=status,
        generation=generation,
        image_stats=ImageStats(
            total=normal + anomalous, labeled=normal + anomalous, normal=normal, anomaly=anomalous
        ),
    ).save()


@pytest.fixture
def machines(call: Caller, monkeypatch: pytest.MonkeyPatch) -> StateMachines:
    runner = StateMachines()
    monkeypatch.setattr(
        models,
        "start_execution",
        lambda env, name, payload: runner.start(STATE_MACHINE_FOR_ENV[env], payload),
    )
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    call("CreateProject", ProjectName=PROJECT)
    return runner


OUTPUT = {"S3Location": {"Bucket": BUCKET, "Prefix": "output/"}}


def test_train_host_detect_stop_delete(call: Caller, machines: StateMachines):
    make_dataset("train", normal=16, anomalous=0, seed=0)
    make_dataset("test", normal=6, anomalous=6, seed=100)
    created = call(
        "CreateModel",
        ProjectName=PROJECT,
        OutputConfig=OUTPUT,
        Description="first",
        Tags=[{"Key": "line", "Value": "4"}],
    )["ModelMetadata"]
    assert created["ModelVersion"] == "1"
    assert created["Status"] == "TRAINING"
    assert machines.outcomes == ["SUCCEEDED"]

    model = call("DescribeModel", ProjectName=PROJECT, ModelVersion="latest")["ModelDescription"]
    assert model["Status"] == "TRAINED", model.get("StatusMessage")
    assert set(model["Performance"]) == {"F1Score", "Recall", "Precision"}
    assert model["Performance"]["F1Score"] > 0.8
    s3 = boto3.client("s3")
    result = json.loads(s3.get_object(**model["EvaluationResult"])["Body"].read())
    assert result["EvaluationDetails"]["ModelArn"] == model["ModelArn"]
    assert model["EvaluationResult"]["Key"] == "output/EvaluationResult-widgets-1.json"
    lines = s3.get_object(**model["EvaluationManifest"])["Body"].read().decode().splitlines()
    assert len(lines) == 12
    tags = call("ListTagsForResource", ResourceArn=model["ModelArn"])["Tags"]
    assert tags == [{"Key": "line", "Value": "4"}]

    good, _ = texture(500)
    with pytest.raises(ClientError) as excinfo:
        call("DetectAnomalies", ProjectName=PROJECT, ModelVersion="1", Body=good, ContentType="image/png")
    assert error_code(excinfo) == "ConflictException"
    assert "HOSTED" in excinfo.value.response["Error"]["Message"]

    assert call("StartModel", ProjectName=PROJECT, ModelVersion="1", MinInferenceUnits=1)["Status"] == (
        "STARTING_HOSTING"
    )
    hosted = call("DescribeModel", ProjectName=PROJECT, ModelVersion="1")["ModelDescription"]
    assert hosted["Status"] == "HOSTED"
    assert hosted["MinInferenceUnits"] == 1

    bad, _ = texture(501, defect=True)
    normal_result = call(
        "DetectAnomalies", ProjectName=PROJECT, ModelVersion="1", Body=good, ContentType="image/png"
    )["DetectAnomalyResult"]
    anomalous_result = call(
        "DetectAnomalies", ProjectName=PROJECT, ModelVersion="1", Body=bad, ContentType="image/png"
    )["DetectAnomalyResult"]
    assert normal_result["Source"] == {"Type": "direct"}
    assert normal_result["IsAnomalous"] is False
    assert anomalous_result["IsAnomalous"] is True
    assert 0.0 <= anomalous_result["Confidence"] <= 1.0
    assert anomalous_result["Anomalies"][0]["Name"] == "background"
    mask = Image.open(io.BytesIO(anomalous_result["AnomalyMask"]))
    assert mask.size == (96, 96)

    for content_type, body in [
        ("image/gif", good),
        ("image/png", good[: len(good) // 2]),
        ("image/png", b"x" * 100),
    ]:
        with pytest.raises(ClientError) as excinfo:
            call(
                "DetectAnomalies", ProjectName=PROJECT, ModelVersion="1", Body=body, ContentType=content_type
            )
        assert error_code(excinfo) == "ValidationException"
    with pytest.raises(ClientError) as excinfo:
        call("DetectAnomalies", ProjectName=PROJECT, ModelVersion="1", Body=good, ContentType="text/plain")
    assert excinfo.value.response["Error"]["Message"] == (
        "content-type must be one of the following. image/jpeg, image/png"
    )
    _hostile_images(call)
    _missing_artifact_is_a_conflict(call)

    assert rejection(call, "DeleteModel", ProjectName=PROJECT, ModelVersion="1") == "ConflictException"

    assert call("StopModel", ProjectName=PROJECT, ModelVersion="1")["Status"] == "STOPPING_HOSTING"
    assert (
        call("DescribeModel", ProjectName=PROJECT, ModelVersion="1")["ModelDescription"]["Status"]
        == "TRAINED"
    )
    assert (
        rejection(
            call, "DetectAnomalies", ProjectName=PROJECT, ModelVersion="1", Body=good, ContentType="image/png"
        )
        == "ConflictException"
    )

    assert call("DeleteModel", ProjectName=PROJECT, ModelVersion="1")["ModelArn"] == model["ModelArn"]
    with pytest.raises(ClientError) as excinfo:
        call("DescribeModel", ProjectName=PROJECT, ModelVersion="1")
    assert error_code(excinfo) == "ResourceNotFoundException"
    assert excinfo.value.response["ResourceType"] == "MODEL"
    # versions are never reused
    machines.hold = True
    assert (
        call("CreateModel", ProjectName=PROJECT, OutputConfig=OUTPUT)["ModelMetadata"]["ModelVersion"] == "2"
    )


def test_a_training_failure_ends_in_training_failed_with_a_reason(call: Caller, machines: StateMachines):
    make_dataset("train", normal=12, anomalous=0)
    boto3.client("s3").delete_object(Bucket=BUCKET, Key="train/3.png")
    call("CreateModel", ProjectName=PROJECT, OutputConfig=OUTPUT)
    model = call("DescribeModel", ProjectName=PROJECT, ModelVersion="1")["ModelDescription"]
    assert model["Status"] == "TRAINING_FAILED"
    assert "s3://factory-images/train/3.png" in model["StatusMessage"]
    assert machines.outcomes == ["FAILED TrainingFailed"]


def test_concurrent_create_model_calls_get_distinct_versions(call: Caller, machines: StateMachines):
    make_dataset("train", normal=10, anomalous=0)
    machines.hold = True
    versions: list[str] = []
    errors: list[Exception] = []

    def create() -> None:
        try:
            versions.append(
                call("CreateModel", ProjectName=PROJECT, OutputConfig=OUTPUT)["ModelMetadata"]["ModelVersion"]
            )
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=create) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(versions) == ["1", "2", "3"]
    page1 = call("ListModels", ProjectName=PROJECT, MaxResults=2)
    page2 = call("ListModels", ProjectName=PROJECT, MaxResults=2, NextToken=page1["NextToken"])
    assert [m["ModelVersion"] for m in page1["Models"] + page2["Models"]] == ["1", "2", "3"]
    assert "NextToken" not in page2


def test_create_model_preconditions(call: Caller, machines: StateMachines):
    with pytest.raises(ClientError) as excinfo:
        call("CreateModel", ProjectName=PROJECT, OutputConfig=OUTPUT)
    assert error_code(excinfo) == "ValidationException"
    assert "no train dataset" in excinfo.value.response["Error"]["Message"]
    make_dataset("train", normal=4, anomalous=0)
    with pytest.raises(ClientError) as excinfo:
        call("CreateModel", ProjectName=PROJECT, OutputConfig=OUTPUT)
    assert error_code(excinfo) == "ValidationException"
    assert "at least 10" in excinfo.value.response["Error"]["Message"]
    DatasetItem.get(PROJECT, "train").update(actions=[DatasetItem.status.set("UPDATE_IN_PROGRESS")])
    assert rejection(call, "CreateModel", ProjectName=PROJECT, OutputConfig=OUTPUT) == "ConflictException"
    assert (
        rejection(call, "CreateModel", ProjectName="absent", OutputConfig=OUTPUT)
        == "ResourceNotFoundException"
    )
    assert ModelItem.count(PROJECT) == 0


def test_hosting_errors(call: Caller, machines: StateMachines):
    make_dataset("train", normal=10, anomalous=0)
    machines.hold = True
    call("CreateModel", ProjectName=PROJECT, OutputConfig=OUTPUT)
    assert (
        rejection(call, "StartModel", ProjectName=PROJECT, ModelVersion="1", MinInferenceUnits=1)
        == "ConflictException"
    )
    assert rejection(call, "StopModel", ProjectName=PROJECT, ModelVersion="1") == "ConflictException"
    assert rejection(call, "DeleteModel", ProjectName=PROJECT, ModelVersion="1") == "ConflictException"
    assert rejection(call, "DeleteProject", ProjectName=PROJECT) == "ConflictException"
    item = ModelItem.get(PROJECT, 1)
    item.status = "TRAINED"
    item.save()
    assert (
        rejection(
            call,
            "StartModel",
            ProjectName=PROJECT,
            ModelVersion="1",
            MinInferenceUnits=3,
            MaxInferenceUnits=2,
        )
        == "ValidationException"
    )
    assert (
        rejection(call, "StartModel", ProjectName=PROJECT, ModelVersion="1", MinInferenceUnits=11)
        == "ServiceQuotaExceededException"
    )
    assert (
        rejection(call, "DescribeModel", ProjectName=PROJECT, ModelVersion="7") == "ResourceNotFoundException"
    )


def _status_change(execution_arn: str, payload: dict, status: str = "ABORTED") -> dict:
    from tests.functional.workflows import status_change

    return status_change("TrainingStateMachine", execution_arn, payload, status)


def test_a_workflow_that_ends_without_its_failure_path_is_repaired(call: Caller, machines: StateMachines):
    from tests.functional.workflows import function_module, lambda_context

    make_dataset("train", normal=10, anomalous=0)
    machines.hold = True
    call("CreateModel", ProjectName=PROJECT, OutputConfig=OUTPUT)
    model = ModelItem.get(PROJECT, 1)
    recovery = function_module("WorkflowRecoveryFunction")
    payload = {"ProjectName": PROJECT, "ModelVersion": 1}
    # another execution's end, or a success, changes nothing
    for event in (
        _status_change("arn:other", payload),
        _status_change(model.execution_arn, payload, "SUCCEEDED"),
    ):
        assert recovery.lambda_handler(event, lambda_context("WorkflowRecoveryFunction")) == {
            "Repaired": False
        }
    assert ModelItem.get(PROJECT, 1).status == "TRAINING"
    event = _status_change(model.execution_arn, payload)
    assert recovery.lambda_handler(event, lambda_context("WorkflowRecoveryFunction")) == {"Repaired": True}
    repaired = call("DescribeModel", ProjectName=PROJECT, ModelVersion="1")["ModelDescription"]
    assert repaired["Status"] == "TRAINING_FAILED"
    assert "ABORTED" in repaired["StatusMessage"]


def _hostile_images(call: Caller) -> None:
    """Every hostile image is a named ValidationException or a correct answer (issue 12)."""
    from tests.unit.test_image_checks import bomb_png

    def detect(body: bytes, content_type: str = "image/png") -> dict[str, Any]:
        return call(  # type: ignore[no-any-return]
            "DetectAnomalies", ProjectName=PROJECT, ModelVersion="1", Body=body, ContentType=content_type
        )["DetectAnomalyResult"]

    for body, message in [
        (bomb_png(20000, 20000), "The image is 20000x20000 pixels"),
        (bomb_png(9000, 9000), "The image is 9000x9000 pixels"),
        (b"", "1 validation error detected: Value null at 'Body'"),  # the API layer, as L4V
        (texture(504)[0][:300], "The image cannot be decoded"),  # a cut-off file
    ]:
        with pytest.raises(ClientError) as excinfo:
            detect(body)
        assert error_code(excinfo) == "ValidationException"
        assert excinfo.value.response["Error"]["Message"].startswith(message), excinfo.value.response

    base, _ = texture(502)
    rgb = Image.open(io.BytesIO(base))
    exif = Image.Exif()
    exif[0x0112] = 6  # EXIF orientation: the answer is on the stored pixel grid, as the mask's size says
    variants = {
        "16-bit": (rgb.convert("L").point(lambda v: v * 256, "I").convert("I;16"), "PNG", {}),
        "cmyk": (rgb.convert("CMYK"), "JPEG", {}),
        "palette": (rgb.convert("P"), "PNG", {}),
        "alpha": (rgb.convert("RGBA"), "PNG", {}),
        "exif-rotated": (rgb.crop((0, 0, 96, 80)), "JPEG", {"exif": exif.tobytes()}),
    }
    for name, (image, kind, options) in variants.items():
        buffer = io.BytesIO()
        image.save(buffer, kind, **options)
        result = detect(buffer.getvalue(), f"image/{kind.lower()}")
        assert 0.0 <= result["Confidence"] <= 1.0, name
        assert Image.open(io.BytesIO(result["AnomalyMask"])).size == image.size, name


def _missing_artifact_is_a_conflict(call: Caller) -> None:
    """model.onnx deleted while HOSTED, then a restart: a clear 409, never a 500."""
    from openlookout.services import inference
    from openlookout.settings import settings

    model = ModelItem.get(PROJECT, 1)
    s3 = boto3.client("s3")
    key = f"{model.artifact_prefix}model.onnx"
    saved = s3.get_object(Bucket=settings().artifacts_bucket, Key=key)["Body"].read()
    s3.delete_object(Bucket=settings().artifacts_bucket, Key=key)
    inference.forget(PROJECT, 1)  # as after a restart: nothing loaded yet
    good, _ = texture(503)
    try:
        with pytest.raises(ClientError) as excinfo:
            call("DetectAnomalies", ProjectName=PROJECT, ModelVersion="1", Body=good, ContentType="image/png")
        assert error_code(excinfo) == "ConflictException"
        assert "model.onnx cannot be read" in excinfo.value.response["Error"]["Message"]
    finally:
        s3.put_object(Bucket=settings().artifacts_bucket, Key=key, Body=saved)
        inference.forget(PROJECT, 1)
