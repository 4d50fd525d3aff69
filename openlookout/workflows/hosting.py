"""Steps of the hosting state machine (statemachines/hosting.asl.json).

Hosting costs nothing per hour: a HOSTED model is a status plus an artifact that the
DetectAnomalies function loads on demand; Lambda scales to zero when no one calls it.
"""

from __future__ import annotations

from typing import Any

from openlookout.services import inference
from openlookout.services.models import MESSAGES, ModelStatus, get_model
from openlookout.workflows.training import caught_error, record_status


def mark_hosted(project_name: str, model_version: int) -> dict[str, Any]:
    model = get_model(project_name, model_version)
    record_status(model, ModelStatus.HOSTED, MESSAGES[ModelStatus.HOSTED])
    return {"Status": model.status}


def mark_hosting_failed(
    project_name: str, model_version: int, error: dict[str, Any] | None
) -> dict[str, Any]:
    model = get_model(project_name, model_version)
    _kind, cause = caught_error(error)
    record_status(
        model, ModelStatus.HOSTING_FAILED, f"The model could not be loaded for inference: {cause}"[:1000]
    )
    return {"Status": model.status}


def mark_stopped(project_name: str, model_version: int) -> dict[str, Any]:
    model = get_model(project_name, model_version)
    inference.forget(project_name, model_version)
    record_status(
        model,
        ModelStatus.TRAINED,
        MESSAGES[ModelStatus.TRAINED],
        min_inference_units=None,
        max_inference_units=None,
    )
    return {"Status": model.status}
