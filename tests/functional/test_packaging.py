"""Packaging jobs in-process: the handlers, the packaging state machine run by the local ASL
interpreter with the template's functions, moto's DynamoDB and S3; the model is a seeded item
whose artifact is a stand-in (the zip's content is checked end to end by the contract test)."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import boto3
import pytest

from openlookout.services import packaging
from openlookout.storage.tables import ModelItem, ModelPackagingJobItem
from tests.functional.conftest import Caller, rejection
from tests.functional.workflows import StateMachines, function_module, lambda_context, status_change

pytest.importorskip("openlookout.local.asl")

BUCKET, PROJECT = "edge-output", "widgets"
CONFIGURATION = {
    "Greengrass": {
        "TargetDevice": "jetson_xavier",
        "S3OutputLocation": {"Bucket": BUCKET, "Prefix": "out"},
        "ComponentName": "com.example.widgets",
        "ComponentVersion": "2.1.0",
    }
}


@pytest.fixture
def machines(call: Caller, monkeypatch: pytest.MonkeyPatch) -> StateMachines:
    runner = StateMachines()
    monkeypatch.setattr(
        packaging, "start_execution", lambda env, name, p: runner.start("PackagingStateMachine", p)
    )
    monkeypatch.setenv("OPENLOOKOUT_LOCAL", "1")  # no Greengrass here: the local registry and ARN
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    call("CreateProject", ProjectName=PROJECT)
    return runner


def _model(status: str, artifact: bool = True, version: int = 1) -> None:
    prefix = f"models/widgets/{version}/"
    ModelItem(PROJECT, version, model_arn="arn:model", status=status, artifact_prefix=prefix).save()
    if artifact:
        for name in ("model.onnx", "model.json"):
            boto3.client("s3").put_object(
                Bucket="openlookout-artifacts", Key=f"models/widgets/1/{name}", Body=b"{}"
            )


def _job(call: Caller, name: str) -> dict[str, Any]:
    return call("DescribeModelPackagingJob", ProjectName=PROJECT, JobName=name)["ModelPackagingDescription"]


def test_a_job_runs_to_succeeded_and_writes_the_component(call: Caller, machines: StateMachines):
    _model("HOSTED")
    name = call(
        "StartModelPackagingJob", ProjectName=PROJECT, ModelVersion="latest", Configuration=CONFIGURATION
    )["JobName"]
    job = _job(call, name)
    assert job["Status"] == "SUCCEEDED", job
    assert job["ModelVersion"] == "1"
    assert job["ModelPackagingOutputDetails"]["Greengrass"]["ComponentVersionArn"].endswith(
        ":components:com.example.widgets:versions:2.1.0"
    )
    archive = (
        boto3.client("s3").get_object(Bucket=BUCKET, Key="out/com.example.widgets-2.1.0.zip")["Body"].read()
    )
    component = json.loads(zipfile.ZipFile(io.BytesIO(archive)).read("model/component.json"))
    assert component == {
        "ComponentName": "com.example.widgets",
        "ComponentVersion": "2.1.0",
        "ModelArn": "arn:model",
    }
    assert machines.outcomes == ["SUCCEEDED"]
    # Deleting the project deletes its job records: a project of the same name starts with none.
    ModelItem.get(PROJECT, 1).delete()  # (a HOSTED model; DeleteModel would want it stopped)
    call("DeleteProject", ProjectName=PROJECT)
    call("CreateProject", ProjectName=PROJECT)
    assert call("ListModelPackagingJobs", ProjectName=PROJECT)["ModelPackagingJobs"] == []


def test_a_missing_artifact_fails_the_job_with_a_message(call: Caller, machines: StateMachines):
    _model("TRAINED", artifact=False)
    call(
        "StartModelPackagingJob",
        ProjectName=PROJECT,
        ModelVersion="1",
        JobName="j1",
        Configuration=CONFIGURATION,
    )
    job = _job(call, "j1")
    assert job["Status"] == "FAILED"
    assert job["StatusMessage"].startswith("Packaging failed (")
    assert "ModelPackagingOutputDetails" not in job
    assert machines.outcomes == ["FAILED PackagingFailed"]


def test_only_trained_or_hosted_models_are_packaged(call: Caller, machines: StateMachines):
    for version, status in enumerate(("TRAINING", "TRAINING_FAILED", "STARTING_HOSTING", "DELETING"), 1):
        _model(status, version=version)
        assert (
            rejection(
                call,
                "StartModelPackagingJob",
                ProjectName=PROJECT,
                ModelVersion=str(version),
                Configuration=CONFIGURATION,
            )
            == "ConflictException"
        )
    assert list(ModelPackagingJobItem.scan()) == []


def test_a_workflow_that_ends_without_its_failure_path_is_repaired(call: Caller, machines: StateMachines):
    _model("TRAINED")
    machines.hold = True
    call(
        "StartModelPackagingJob",
        ProjectName=PROJECT,
        ModelVersion="1",
        JobName="j2",
        Configuration=CONFIGURATION,
    )
    assert _job(call, "j2")["Status"] == "CREATED"
    job = ModelPackagingJobItem.get(PROJECT, "j2")
    recovery = function_module("WorkflowRecoveryFunction")

    def ended(execution: str | None, status: str = "ABORTED") -> Any:
        payload = {"ProjectName": PROJECT, "JobName": "j2"}
        event = status_change("PackagingStateMachine", execution, payload, status)
        return recovery.lambda_handler(event, lambda_context("WorkflowRecoveryFunction"))

    assert ended("arn:other") == {"Repaired": False}
    assert ended(job.execution_arn, "SUCCEEDED") == {"Repaired": False}
    assert ended(job.execution_arn) == {"Repaired": True}
    repaired = _job(call, "j2")
    assert repaired["Status"] == "FAILED"
    assert "ABORTED" in repaired["StatusMessage"]
