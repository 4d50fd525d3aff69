"""Every workflow step, and the one way each runs: the contracts table and its Lambda handler.

A state machine's Task names a template function and, for the functions that run several small
steps, a "Step" parameter. `STEPS` maps that pair to the step's input contract, its output
contract and the code that runs it (workflows/contracts.py holds the models). Every step runs the
same way, whatever its function: its input parsed with Powertools' parser, the step, its output
validated against its contract, logged and traced like every Lambda invocation
(`step_handler`). tests/unit/test_workflow_contracts.py checks every path of every state machine
against this table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from openlookout.core.observability import LambdaHandler, lambda_entry, logger
from openlookout.workflows import contracts as c
from openlookout.workflows import dataset_import, hosting, packaging, training

StepResult = Mapping[str, Any] | BaseModel


@dataclass(frozen=True)
class Step:
    input: type[c.Model]
    output: type[c.Model] | None  # None: the step's answer is free-form (a model's load report)
    run: Callable[..., StepResult]
    timed: bool = False  # run(input, seconds_left): a looping step that stops before its timeout


def _error(step: Any) -> dict[str, Any] | None:
    return step.Error.model_dump(exclude_unset=True) if step.Error is not None else None


# (the template's function, the Task's "Step" parameter) -> the step.
STEPS: dict[tuple[str, str | None], Step] = {
    # training and hosting (statemachines/training.asl.json, hosting.asl.json)
    ("ModelWorkflowFunction", "PrepareTraining"): Step(
        c.PrepareTrainingStep, c.PreparedTraining, lambda s: training.prepare(s.ProjectName, s.ModelVersion)
    ),
    ("ModelWorkflowFunction", "ReadJobResult"): Step(
        c.ReadJobResultStep,
        c.TrainingOutcome,
        lambda s: training.read_job_result(s.JobSpec.Bucket, s.JobSpec.Key),
    ),
    ("ModelWorkflowFunction", "FinishTraining"): Step(
        c.FinishTrainingStep,
        c.StatusResult,
        lambda s: training.finish(s.ProjectName, s.ModelVersion, c.dump(s.Result)),
    ),
    ("ModelWorkflowFunction", "FailTraining"): Step(
        c.FailTrainingStep, c.StatusResult, lambda s: training.fail(s.ProjectName, s.ModelVersion, _error(s))
    ),
    ("TrainModelFunction", None): Step(c.TrainStep, c.TrainingOutcome, training.train_step),
    ("ModelWorkflowFunction", "MarkHosted"): Step(
        c.MarkHostedStep, c.StatusResult, lambda s: hosting.mark_hosted(s.ProjectName, s.ModelVersion)
    ),
    ("ModelWorkflowFunction", "MarkHostingFailed"): Step(
        c.MarkHostingFailedStep,
        c.StatusResult,
        lambda s: hosting.mark_hosting_failed(s.ProjectName, s.ModelVersion, _error(s)),
    ),
    ("ModelWorkflowFunction", "MarkStopped"): Step(
        c.MarkStoppedStep, c.StatusResult, lambda s: hosting.mark_stopped(s.ProjectName, s.ModelVersion)
    ),
    ("DetectAnomaliesFunction", None): Step(c.LoadModelStep, None, hosting.load_model),
    # packaging (statemachines/packaging.asl.json)
    ("PackagingWorkflowFunction", "MarkRunning"): Step(
        c.MarkRunningStep, c.StatusResult, lambda s: packaging.mark_running(s.ProjectName, s.JobName)
    ),
    ("PackagingWorkflowFunction", "Package"): Step(
        c.PackageStep, c.PackagedResult, lambda s: packaging.package(s.ProjectName, s.JobName)
    ),
    ("PackagingWorkflowFunction", "Fail"): Step(
        c.FailPackagingStep,
        c.PackagingFailedResult,
        lambda s: packaging.fail(s.ProjectName, s.JobName, _error(s)),
    ),
    # datasets (statemachines/dataset_import.asl.json): these Tasks get the execution's state
    ("DatasetPrepareFunction", None): Step(c.DatasetState, c.PrepareResult, dataset_import.prepare),
    ("DatasetCopyEntriesFunction", None): Step(
        c.DatasetState, c.CopyProgress, dataset_import.copy_entries, timed=True
    ),
    ("DatasetCheckChunkFunction", None): Step(c.Chunk, c.ChunkChecked, dataset_import.check_chunk),
    ("DatasetCommitFunction", None): Step(c.DatasetState, c.CommitResult, dataset_import.commit),
    ("DatasetPurgeFunction", None): Step(c.PurgeTarget, c.Done, dataset_import.purge, timed=True),
    ("DatasetMarkFailedFunction", None): Step(c.DatasetState, c.MarkedFailed, dataset_import.mark_failed),
    ("DatasetFinishFailureFunction", None): Step(c.DatasetState, c.Done, dataset_import.finish_failure),
}


def seconds_left(context: Any, default: float = 300.0) -> float:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return remaining() / 1000.0 if callable(remaining) else default


def run_step(function: str, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    """Runs the step that `event` asks `function` for, checked against its contracts."""
    step = STEPS.get((function, event.get("Step")))
    if step is None:
        raise ValueError(f"{function} has no step {event.get('Step')!r}")
    parsed = c.read(event, step.input)
    result = step.run(parsed, seconds_left(context)) if step.timed else step.run(parsed)
    answer = result if isinstance(result, BaseModel) else dict(result)
    if step.output is None:
        return dict(answer) if not isinstance(answer, BaseModel) else c.dump(answer)
    return c.dump(step.output.model_validate(answer))


def step_handler(function: str, *, log_event: bool = False) -> LambdaHandler:
    """The Lambda handler of a template function that runs workflow steps."""

    @lambda_entry(log_event=log_event)
    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        logger.append_keys(step=event.get("Step") or function)
        return run_step(function, event, context)

    return lambda_handler
