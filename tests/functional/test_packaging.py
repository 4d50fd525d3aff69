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


def _objects() -> dict[str, bytes]:
    s3 = boto3.client("s3")
    listed = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed}


def test_a_clashing_version_fails_before_it_writes_a_file(call: Caller, machines: StateMachines):
    """The published component's zip and recipe stay as they are (a FAILED job once replaced them)."""
    _model("TRAINED")
    call("StartModelPackagingJob", ProjectName=PROJECT, ModelVersion="1", JobName="first",
         Configuration=CONFIGURATION)  # fmt: skip
    assert _job(call, "first")["Status"] == "SUCCEEDED"
    published = _objects()
    assert set(published) == {
        "out/com.example.widgets-2.1.0.zip",
        "out/com.example.widgets-2.1.0.recipe.yaml",
    }
    call("StartModelPackagingJob", ProjectName=PROJECT, ModelVersion="1", JobName="second",
         Configuration=CONFIGURATION)  # fmt: skip
    second = _job(call, "second")
    assert second["Status"] == "FAILED"
    assert second["StatusMessage"] == (
        "Packaging failed: The component com.example.widgets version 2.1.0 already exists."
    )
    assert _objects() == published


def test_on_aws_greengrass_is_asked_before_anything_is_written(
    call: Caller, machines: StateMachines, monkeypatch: pytest.MonkeyPatch
):
    """Without `openlookout serve`, the clash check is Greengrass's DescribeComponent. Nothing emulates
    greengrassv2 here (moto has only Greengrass v1), so its client is a botocore Stubber: the test
    checks the ARN asked for and that a clash writes nothing."""
    from botocore.stub import Stubber

    from openlookout.workflows import packaging as workflow

    monkeypatch.delenv("OPENLOOKOUT_LOCAL")
    greengrass = boto3.client("greengrassv2", region_name="us-east-1")
    stubber = Stubber(greengrass)
    arn = "arn:aws:greengrass:us-east-1:123456789012:components:com.example.widgets:versions:2.1.0"
    stubber.add_response("describe_component", {"arn": arn}, {"arn": arn})
    stubber.add_client_error("describe_component", "ResourceNotFoundException", expected_params={"arn": arn})
    created = {"arn": arn, "componentName": "com.example.widgets", "componentVersion": "2.1.0"}
    created |= {"creationTimestamp": 0, "status": {"componentState": "REQUESTED"}}
    stubber.add_response("create_component_version", created)
    real_client = boto3.client
    monkeypatch.setattr(
        workflow.boto3,
        "client",
        lambda name, *a, **k: greengrass if name == "greengrassv2" else real_client(name, *a, **k),
    )
    _model("TRAINED")
    with stubber:
        call("StartModelPackagingJob", ProjectName=PROJECT, ModelVersion="1", JobName="exists",
             Configuration=CONFIGURATION)  # fmt: skip
        assert _job(call, "exists")["StatusMessage"].endswith(
            "com.example.widgets version 2.1.0 already exists."
        )
        assert _objects() == {}
        call("StartModelPackagingJob", ProjectName=PROJECT, ModelVersion="1", JobName="new",
             Configuration=CONFIGURATION)  # fmt: skip
        new = _job(call, "new")
        assert new["Status"] == "SUCCEEDED", new
        assert new["ModelPackagingOutputDetails"]["Greengrass"]["ComponentVersionArn"] == arn
        stubber.assert_no_pending_responses()
    assert len(_objects()) == 2
