"""The service's environment is validated once, in one place, and a bad one names its variable."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from unittest import mock

import pytest

from openlookout.local.template import LocalNames, SecretStore, Template
from openlookout.services import executions
from openlookout.settings import ConfigurationError, Settings, settings
from openlookout.storage.tables import ProjectItem
from tests.template_support import TEMPLATE


def test_the_test_environment_is_valid() -> None:
    assert settings().projects_table == "ProjectsTable"
    assert settings().max_inference_units == 10 and settings().training_compute == "CPU"


def test_a_missing_variable_fails_at_cold_start_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROJECTS_TABLE")
    handler = importlib.import_module("openlookout.api.handler")
    with pytest.raises(ConfigurationError, match=r"PROJECTS_TABLE is not set"):
        handler.api_operation("ListProjects")  # what a handler module runs when Lambda imports it


def test_an_empty_variable_counts_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGINATION_TOKEN_SECRET", "")
    with pytest.raises(ConfigurationError, match=r"PAGINATION_TOKEN_SECRET is not set"):
        settings()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MAX_INFERENCE_UNITS", "0"),
        ("TRAINING_COMPUTE", "TPU"),
        ("ACCOUNT_ID", "12"),
        ("OPENLOOKOUT_LOCAL", "maybe"),
    ],
)
def test_an_invalid_variable_is_named_with_its_value(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=rf"{variable}='{value}'"):
        settings()


def test_values_are_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINING_COMPUTE", "gpu")
    monkeypatch.setenv("OPENLOOKOUT_INFERENCE_THREADS", "2")
    assert (settings().training_compute, settings().inference_threads) == ("GPU", 2)


def test_table_names_are_read_when_used_not_when_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROJECTS_TABLE", "OtherProjects")
    assert ProjectItem.Meta.table_name == "OtherProjects"


def test_an_execution_arn_is_never_invented(monkeypatch: pytest.MonkeyPatch) -> None:
    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:Training"
    monkeypatch.setenv("TRAINING_STATE_MACHINE_ARN", arn)
    assert (
        executions.execution_arn(executions.StateMachine.TRAINING, "m-1")
        == arn.replace(":stateMachine:", ":execution:") + ":m-1"
    )
    monkeypatch.delenv("TRAINING_STATE_MACHINE_ARN")
    with pytest.raises(ConfigurationError, match="TRAINING_STATE_MACHINE_ARN is not set"):
        executions.execution_arn(executions.StateMachine.TRAINING, "m-1")


def test_every_function_of_the_template_gets_a_valid_environment_locally(tmp_path: Path) -> None:
    template = Template(TEMPLATE, LocalNames(secret=SecretStore(tmp_path / "secret.json")))
    functions = template.functions()
    for logical_id in functions:
        with mock.patch.dict(
            os.environ, {"AWS_REGION": "us-east-1", **template.environment_of(logical_id)}, clear=True
        ):
            Settings()
    # The functions that start a workflow (and record its execution's ARN first) are given its ARN.
    for logical_id, variable in [
        ("CreateModelFunction", "TRAINING_STATE_MACHINE_ARN"),
        ("StartModelFunction", "HOSTING_STATE_MACHINE_ARN"),
        ("StopModelFunction", "HOSTING_STATE_MACHINE_ARN"),
        ("StartModelPackagingJobFunction", "PACKAGING_STATE_MACHINE_ARN"),
        ("CreateDatasetFunction", "DATASET_STATE_MACHINE_ARN"),
    ]:
        arn = template.environment_of(logical_id)[variable]
        assert arn.startswith("arn:aws:states:") and ":stateMachine:" in arn, (logical_id, arn)


def test_nothing_else_reads_the_environment() -> None:
    """Only settings.py reads os.environ (the local runtime sets it for the handlers it runs)."""
    package = Path(__file__).resolve().parents[2] / "openlookout"
    readers = sorted(
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if ("os.environ" in path.read_text() or "getenv(" in path.read_text())
        and path.name != "settings.py"
        and path.parent.name != "local"
    )
    assert readers == []
