"""Steps of the hosting state machine (statemachines/hosting.asl.json).

Hosting costs nothing per hour: a HOSTED model is a status plus an artifact that the
DetectAnomalies function loads on demand; Lambda scales to zero when no one calls it.
"""

from __future__ import annotations

from typing import Any

from openlookout.lifecycles import model as lifecycle
from openlookout.lifecycles.model import ModelEvent
from openlookout.services import inference
from openlookout.services.models import get_model
from openlookout.workflows import contracts as c
from openlookout.workflows.caught import caught_error
from openlookout.workflows.steps import Step, Steps, step_error


def mark_hosted(project_name: str, model_version: int) -> dict[str, Any]:
    model = get_model(project_name, model_version)
    lifecycle.record(model, ModelEvent.HOSTING_SUCCEEDED)
    return {"Status": model.status}


def mark_hosting_failed(
    project_name: str, model_version: int, error: dict[str, Any] | None
) -> dict[str, Any]:
    model = get_model(project_name, model_version)
    message = lifecycle.hosting_failure_message(caught_error(error).message)
    lifecycle.record(model, ModelEvent.HOSTING_FAILED, message)
    return {"Status": model.status}


def mark_stopped(project_name: str, model_version: int) -> dict[str, Any]:
    model = get_model(project_name, model_version)
    inference.forget(project_name, model_version)
    lifecycle.record(model, ModelEvent.STOPPED, min_inference_units=None, max_inference_units=None)
    return {"Status": model.status}


def load_model(step: c.LoadModelStep) -> dict[str, Any]:
    """The hosting machine's load check, run by the DetectAnomalies function itself, so the execution
    environment that serves DetectAnomalies is the one that is warmed."""
    return inference.load_and_check(step.LoadModel.ProjectName, step.LoadModel.ModelVersion)


# This module's workflow steps (workflows/steps.py runs them).
STEPS: Steps = {
    ("ModelWorkflowFunction", "MarkHosted"): Step(
        c.MarkHostedStep, c.StatusResult, lambda s: mark_hosted(s.ProjectName, s.ModelVersion)
    ),
    ("ModelWorkflowFunction", "MarkHostingFailed"): Step(
        c.MarkHostingFailedStep,
        c.StatusResult,
        lambda s: mark_hosting_failed(s.ProjectName, s.ModelVersion, step_error(s)),
    ),
    ("ModelWorkflowFunction", "MarkStopped"): Step(
        c.MarkStoppedStep, c.StatusResult, lambda s: mark_stopped(s.ProjectName, s.ModelVersion)
    ),
    ("DetectAnomaliesFunction", None): Step(c.LoadModelStep, None, load_model),
}
