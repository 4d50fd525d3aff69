"""Training progress in StatusMessage: written while TRAINING, throttled, never after training ended."""

from __future__ import annotations

import boto3
import pytest

from openlookout.services import models
from openlookout.storage.tables import ModelItem
from openlookout.workflows.training import StatusReporter, write_progress
from tests.functional.conftest import Caller
from tests.functional.test_models import BUCKET, OUTPUT, PROJECT, make_dataset


@pytest.fixture
def training_model(call: Caller, monkeypatch: pytest.MonkeyPatch) -> str:
    """Model 1 left TRAINING: its workflow is not started."""
    monkeypatch.setattr(models, "start_execution", lambda env, name, payload: None)
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    call("CreateProject", ProjectName=PROJECT)
    make_dataset("train", normal=12, anomalous=0, seed=0)
    return str(call("CreateModel", ProjectName=PROJECT, OutputConfig=OUTPUT)["ModelMetadata"]["ModelVersion"])


def status(call: Caller, version: str) -> tuple[str, str]:
    model = call("DescribeModel", ProjectName=PROJECT, ModelVersion=version)["ModelDescription"]
    return model["Status"], model["StatusMessage"]


def test_progress_shows_in_describe_model_while_training(call: Caller, training_model: str) -> None:
    assert write_progress(PROJECT, 1, "Extracting features: 120 of 200 images")
    assert status(call, training_model) == ("TRAINING", "Extracting features: 120 of 200 images")


def test_the_reporter_writes_at_most_once_per_interval(call: Caller, training_model: str) -> None:
    reporter = StatusReporter(PROJECT, 1, interval=3600)
    reporter("Building memory bank")
    reporter("Evaluating: 40 of 83")  # within the interval: logged only
    assert status(call, training_model)[1] == "Building memory bank"
    reporter.interval = 0
    reporter("Evaluating: 80 of 83")
    assert status(call, training_model)[1] == "Evaluating: 80 of 83"


def test_a_late_message_does_not_overwrite_a_finished_model(call: Caller, training_model: str) -> None:
    model = ModelItem.get(PROJECT, 1)
    model.status, model.status_message = "TRAINED", "Training completed successfully."
    model.save()
    assert not write_progress(PROJECT, 1, "Evaluating: 83 of 83")
    assert status(call, training_model) == ("TRAINED", "Training completed successfully.")
