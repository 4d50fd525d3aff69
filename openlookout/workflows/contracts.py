"""The typed contracts of every workflow step: what each state machine's steps take and return.

The field names are the ones the state machines (statemachines/*.asl.json) use in their paths, so
these models are the one definition both languages share: tests/unit/test_workflow_contracts.py
checks every path of every ASL file against them. Steps parse their input with Powertools' parser
and build their output from these models (`dump`), so a renamed field fails in one place.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from aws_lambda_powertools.utilities.parser import parse
from pydantic import BaseModel, ConfigDict

Contract = TypeVar("Contract", bound=BaseModel)


class Model(BaseModel):
    # Unknown fields are kept: a step's input is the execution's whole state in some machines.
    model_config = ConfigDict(extra="allow", frozen=True)


def read(event: Any, model: type[Contract]) -> Contract:
    """A step's input, parsed and validated (a ValidationError names the field that is wrong)."""
    if isinstance(event, model):
        return event
    return parse(event=dict(event), model=model)


def dump(result: BaseModel) -> dict[str, Any]:
    """A step's output as JSON: the fields the step set (None included), none it left to defaults."""
    return result.model_dump(mode="json", exclude_unset=True)


class StepError(Model):
    """What a Catch puts at its ResultPath."""

    Error: str | None = None
    Cause: str | None = None


class S3Object(Model):
    Bucket: str
    Key: str
    VersionId: str | None = None


class StatusResult(Model):
    Status: str


# ------------------------------------------------------------------ training and hosting


class ModelRef(Model):
    ProjectName: str
    ModelVersion: int


class PrepareTrainingStep(ModelRef):
    Step: Literal["PrepareTraining"]


class PreparedTraining(Model):
    JobSpec: S3Object
    ImageCount: int
    UseJob: bool


class TrainStep(Model):
    """The TrainModel function's input (TrainOnLambda)."""

    JobSpec: S3Object


class TrainingOutcome(Model):
    Performance: dict[str, float | None]
    EvaluationManifestKey: str
    EvaluationResultKey: str
    EvaluationEndTimestamp: float


class ReadJobResultStep(ModelRef):
    Step: Literal["ReadJobResult"]
    JobSpec: S3Object


class FinishTrainingStep(ModelRef):
    Step: Literal["FinishTraining"]
    Result: TrainingOutcome


class FailTrainingStep(ModelRef):
    Step: Literal["FailTraining"]
    Error: StepError | None = None


class TrainingState(ModelRef):
    """The training execution's state as its steps add to it."""

    Prepared: PreparedTraining | None = None
    Trained: TrainingOutcome | None = None
    Job: dict[str, Any] | None = None  # SageMaker's DescribeTrainingJob
    Finished: StatusResult | None = None
    Failed: StatusResult | None = None
    Error: StepError | None = None


class MarkHostedStep(ModelRef):
    Step: Literal["MarkHosted"]


class MarkHostingFailedStep(ModelRef):
    Step: Literal["MarkHostingFailed"]
    Error: StepError | None = None


class MarkStoppedStep(ModelRef):
    Step: Literal["MarkStopped"]


class LoadModelStep(Model):
    """The DetectAnomalies function's input when the hosting machine loads the model."""

    LoadModel: ModelRef


class HostingState(ModelRef):
    Action: Literal["start", "stop"]
    Loaded: dict[str, Any] | None = None
    Marked: StatusResult | None = None
    Error: StepError | None = None


# ------------------------------------------------------------------ packaging


class JobRef(Model):
    ProjectName: str
    JobName: str


class MarkRunningStep(JobRef):
    Step: Literal["MarkRunning"]


class PackageStep(JobRef):
    Step: Literal["Package"]


class FailPackagingStep(JobRef):
    Step: Literal["Fail"]
    Error: StepError | None = None


class ComponentOutput(Model):
    ComponentVersionArn: str
    ComponentName: str
    ComponentVersion: str


class PackagedResult(StatusResult):
    Output: ComponentOutput


class PackagingFailedResult(StatusResult):
    Error: dict[str, Any]


class PackagingState(JobRef):
    MarkRunning: StatusResult | None = None
    Package: PackagedResult | None = None
    Fail: PackagingFailedResult | None = None
    Error: StepError | None = None


# ------------------------------------------------------------------ datasets


class DatasetRef(Model):
    ProjectName: str
    DatasetType: str


class Chunk(DatasetRef):
    """One Map iteration of CheckChunks: a slice of the manifest's lines, staged in S3."""

    Generation: str
    Operation: str
    ChunkKey: str


class PrepareResult(Model):
    Ok: bool
    Message: str | None = None
    Chunks: list[Chunk] | None = None
    ImagesBucket: str | None = None
    Images: int | None = None


class CopyProgress(Model):
    Done: bool
    Cursor: str | None = None
    Copied: int = 0


class LineFailure(Model):
    Line: int
    Reason: str


class ChunkChecked(Model):
    Entries: int
    FailedLines: int
    Failure: LineFailure | None = None


class CommitResult(Model):
    Ok: bool
    Message: str | None = None
    PreviousGeneration: str | None = None


class PurgeTarget(DatasetRef):
    DatasetGeneration: str | None = None
    StagingGeneration: str | None = None


class Done(Model):
    Done: bool


class MarkedFailed(Model):
    Message: str


class DatasetState(DatasetRef):
    """The dataset execution's state: its input (services/datasets.py workflow_input) and results."""

    Operation: Literal["CREATE", "UPDATE", "DELETE"]
    Generation: str
    Source: S3Object | None = None
    Prepared: PrepareResult | None = None
    Copy: CopyProgress | None = None
    Checked: list[ChunkChecked] | None = None
    Committed: CommitResult | None = None
    Purged: Done | None = None
    Failed: MarkedFailed | None = None
    Finished: Done | None = None
    Error: StepError | None = None
    PurgeError: StepError | None = None  # a failed purge is logged, never fatal: its leftovers are harmless


# ------------------------------------------------------------------ the state machines

# Each state machine's state model (workflows/steps.py says which step takes and returns what).
STATE_MODELS: dict[str, type[Model]] = {
    "training": TrainingState,
    "hosting": HostingState,
    "packaging": PackagingState,
    "dataset_import": DatasetState,
}
