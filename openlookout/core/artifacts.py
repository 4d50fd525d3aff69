"""Where a model's files live in the artifacts bucket: the one layout that the service, the training
step and the `openlookout` commands share (model.onnx, model.json, the evaluation, job.json)."""

from __future__ import annotations

MODELS_PREFIX = "models/"


def model_artifact_prefix(project_name: str, model_version: int | str) -> str:
    return f"{MODELS_PREFIX}{project_name}/{int(model_version)}/"
