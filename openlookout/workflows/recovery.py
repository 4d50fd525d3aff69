"""Repairs what a workflow that ended without running its own failure path leaves behind.

A state machine's Catch paths record every failure they see, but an execution can also end
without them: aborted by a user, timed out as a whole, or (locally) cut short by a restart of
`openlookout serve`. Step Functions then emits a "Step Functions Execution Status Change"
event; this step, wired to it by an EventBridge rule in template.yaml (and by the local
runtime's same rule), moves the dataset or model out of its in-progress state, so nothing stays
CREATE_IN_PROGRESS or TRAINING forever.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger

from openlookout.core.errors import ResourceNotFoundException
from openlookout.lifecycles import model as model_lifecycle
from openlookout.lifecycles.model import WORKFLOW_ENDED, ModelStatus
from openlookout.lifecycles.packaging_job import UNSETTLED, JobStatus, record
from openlookout.services import packaging
from openlookout.services.models import get_model
from openlookout.workflows import dataset_import

logger = Logger(service="openlookout")

ENDED_BADLY = {"FAILED", "TIMED_OUT", "ABORTED"}


def execution_ended(event: dict[str, Any]) -> dict[str, Any]:
    detail = event.get("detail") or {}
    status = str(detail.get("status"))
    if status not in ENDED_BADLY:
        return {"Repaired": False}
    try:
        payload = json.loads(detail.get("input") or "{}")
    except ValueError:
        return {"Repaired": False}
    error, cause = detail.get("error") or status, detail.get("cause") or ""
    reason = f"ended {status}" + (
        f" ({error}{': ' + cause if cause else ''})" if error != status or cause else ""
    )
    if "DatasetType" in payload and "Generation" in payload:
        # The dataset's own failure path, as the state machine would have run it; both steps only
        # act while this execution's generation is still the pending one.
        state = {**payload, "Error": {"Error": error, "Cause": cause or f"The import workflow {reason}."}}
        state["Failed"] = dataset_import.mark_failed(state)
        dataset_import.finish_failure(state)
        logger.info("dataset workflow repaired", extra={"execution": detail.get("executionArn")})
        return {"Repaired": True}
    if "JobName" in payload:
        return {"Repaired": _repair_packaging_job(payload, detail.get("executionArn"), reason)}
    if "ModelVersion" in payload:
        return {"Repaired": _repair_model(payload, detail.get("executionArn"), reason)}
    return {"Repaired": False}


def _repair_model(payload: dict[str, Any], execution: str | None, reason: str) -> bool:
    try:
        model = get_model(payload["ProjectName"], int(payload["ModelVersion"]))
    except ResourceNotFoundException:
        return False
    event = WORKFLOW_ENDED.get(ModelStatus(model.status))
    if event is None or model.execution_arn != execution:
        return False  # already settled, or a newer workflow owns the model
    model_lifecycle.record(model, event, model_lifecycle.workflow_ended_message(event, reason))
    logger.info("model workflow repaired", extra={"model": model.model_arn, "status": model.status})
    return True


def _repair_packaging_job(payload: dict[str, Any], execution: str | None, reason: str) -> bool:
    try:
        job = packaging.get_job(payload["ProjectName"], payload["JobName"])
    except ResourceNotFoundException:
        return False
    if job.status not in UNSETTLED or job.execution_arn != execution:
        return False  # the job's own failure path already ran
    record(job, JobStatus.FAILED, f"Packaging failed: the workflow {reason}.")
    logger.info("packaging workflow repaired", extra={"job": job.job_name})
    return True
