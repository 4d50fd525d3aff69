"""Repairs what a workflow that ended without running its own failure path leaves behind.

A state machine's Catch paths record every failure they see, but an execution can also end
without them: aborted by a user, timed out as a whole, or (locally) cut short by a restart of
`openlookout serve`. Step Functions then emits a "Step Functions Execution Status Change"
event; this step, wired to it by an EventBridge rule in template.yaml (and by the local
runtime's same rule), moves the dataset or model out of its in-progress state, so nothing stays
CREATE_IN_PROGRESS or TRAINING forever.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, Json

from openlookout.core.errors import ResourceNotFoundException
from openlookout.core.observability import logger
from openlookout.lifecycles import model as model_lifecycle
from openlookout.lifecycles.model import WORKFLOW_ENDED, ModelStatus
from openlookout.lifecycles.packaging_job import UNSETTLED, JobStatus, record
from openlookout.services import packaging
from openlookout.services.executions import StateMachine, state_machine_arn
from openlookout.services.models import get_model
from openlookout.workflows import dataset_import
from openlookout.workflows.contracts import DatasetState, JobRef, ModelRef, StepError


class ExecutionStatusChange(BaseModel):
    """The detail of Step Functions' "Execution Status Change" event (the fields this step reads)."""

    executionArn: str
    stateMachineArn: str
    status: Literal["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE"]
    input: Json[dict[str, Any]] | None = None
    error: str | None = None
    cause: str | None = None

    def reason(self) -> str:
        error = self.error or self.status
        if error == self.status and not self.cause:
            return f"ended {self.status}"
        return f"ended {self.status} ({error}{': ' + self.cause if self.cause else ''})"


class ExecutionEnded(EventBridgeModel):
    detail: ExecutionStatusChange


ENDED_BADLY = {"FAILED", "TIMED_OUT", "ABORTED"}


def execution_ended(event: dict[str, Any]) -> dict[str, Any]:
    ended = parse(event=event, model=ExecutionEnded).detail
    repair = _repairs().get(ended.stateMachineArn)
    if ended.status not in ENDED_BADLY or repair is None:
        return {"Repaired": False}
    return {"Repaired": repair(ended)}


def _repairs() -> dict[str, Callable[[ExecutionStatusChange], bool]]:
    """Each workflow's repair, by its state machine (the template gives this function all four)."""
    repairs = {
        StateMachine.DATASET: _repair_dataset,
        StateMachine.TRAINING: _repair_model,
        StateMachine.HOSTING: _repair_model,
        StateMachine.PACKAGING: _repair_packaging_job,
    }
    return {state_machine_arn(machine): repair for machine, repair in repairs.items()}


def _repair_dataset(ended: ExecutionStatusChange) -> bool:
    """The dataset's own failure path, as the state machine would have run it; both steps only act
    while this execution's generation is still the pending one."""
    state = DatasetState.model_validate(ended.input or {})
    cause = ended.cause or f"The import workflow {ended.reason()}."
    state = state.model_copy(update={"Error": StepError(Error=ended.error or ended.status, Cause=cause)})
    state = state.model_copy(update={"Failed": dataset_import.mark_failed(state)})
    dataset_import.finish_failure(state)
    logger.info("dataset workflow repaired", extra={"execution": ended.executionArn})
    return True


def _repair_model(ended: ExecutionStatusChange) -> bool:
    ref = ModelRef.model_validate(ended.input or {})
    try:
        model = get_model(ref.ProjectName, ref.ModelVersion)
    except ResourceNotFoundException:
        return False
    event = WORKFLOW_ENDED.get(ModelStatus(model.status))
    if event is None or model.execution_arn != ended.executionArn:
        return False  # already settled, or a newer workflow owns the model
    model_lifecycle.record(model, event, model_lifecycle.workflow_ended_message(event, ended.reason()))
    logger.info("model workflow repaired", extra={"model": model.model_arn, "status": model.status})
    return True


def _repair_packaging_job(ended: ExecutionStatusChange) -> bool:
    ref = JobRef.model_validate(ended.input or {})
    try:
        job = packaging.get_job(ref.ProjectName, ref.JobName)
    except ResourceNotFoundException:
        return False
    if job.status not in UNSETTLED or job.execution_arn != ended.executionArn:
        return False  # the job's own failure path already ran
    record(job, JobStatus.FAILED, f"Packaging failed: the workflow {ended.reason()}.")
    logger.info("packaging workflow repaired", extra={"job": job.job_name})
    return True
