"""Test-wide environment: set before any `openlookout` module reads it at import time."""

import os
from pathlib import Path

import pytest

# Fails the run when a test skips for a reason not allowed there.
from tests.skip_guard import pytest_runtest_logreport, pytest_sessionfinish, pytest_terminal_summary  # noqa: F401

_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "ACCOUNT_ID": "123456789012",
    "PROJECTS_TABLE": "ProjectsTable",
    "DATASETS_TABLE": "DatasetsTable",
    "DATASET_ENTRIES_TABLE": "DatasetEntriesTable",
    "MODELS_TABLE": "ModelsTable",
    "MODEL_PACKAGING_JOBS_TABLE": "ModelPackagingJobsTable",
    "IDEMPOTENCY_TABLE": "IdempotencyTable",
    "ARTIFACTS_BUCKET": "openlookout-artifacts",
    "PAGINATION_TOKEN_SECRET": "unit-test-secret",
    # What the template gives the functions that start these workflows (tests stub the starts).
    "DATASET_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:DatasetStateMachine",
    "TRAINING_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:TrainingStateMachine",
    "HOSTING_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:HostingStateMachine",
    "PACKAGING_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:PackagingStateMachine",
    "POWERTOOLS_METRICS_NAMESPACE": "LookoutVision",
    "POWERTOOLS_SERVICE_NAME": "openlookout",
}
for _key, _value in _ENV.items():
    os.environ.setdefault(_key, _value)
# Tests must never reach a real AWS account or a developer's local endpoint by accident.
for _key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3"):
    os.environ.pop(_key, None)


@pytest.fixture(scope="session")
def washers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The images tests use (tests/example_images.py), made once per session: read them, never write."""
    from tests.example_images import make_washers

    return make_washers(tmp_path_factory.mktemp("images") / "washers")
