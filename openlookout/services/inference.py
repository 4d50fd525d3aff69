"""DetectAnomalies and the hosting checks: the onnxruntime side, without torch.

A model's artifact (model.onnx + model.json) is fetched once per execution environment and
kept; every call checks that the model is HOSTED, validates the image as L4V did, runs the
graph and emits L4V's CloudWatch metrics through Powertools Metrics (EMF).
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from botocore.exceptions import ClientError

from openlookout.core.errors import ConflictException, ResourceType, ValidationException
from openlookout.core.observability import request_metrics
from openlookout.services.image_checks import ImageRuleError, inspect_header
from openlookout.services.models import ModelStatus, get_model
from openlookout.settings import settings
from openlookout.storage.artifacts import fetch_file
from openlookout.storage.tables import ModelItem

CONTENT_TYPES = ("image/jpeg", "image/png")
CONTENT_TYPE_MESSAGE = "content-type must be one of the following. image/jpeg, image/png"

_detectors: dict[tuple[str, int], Any] = {}
_lock = threading.Lock()
_emit_lock = threading.Lock()


def model_cache_dir() -> Path:
    """Where hosted models are unpacked: the data dir locally (never a /tmp shared by every server on
    the machine), the function's own /tmp (OPENLOOKOUT_MODEL_CACHE) in Lambda."""
    s = settings()
    if s.local and s.data_dir:
        return s.data_dir / "models"
    return (s.model_cache or Path(tempfile.gettempdir())) / "openlookout-models"


def _detector(model: ModelItem) -> Any:
    """The model's Detector, loaded once per process (an execution environment, or `serve`)."""
    from openlookout.ml.serving.inference import Detector

    key = (model.project_name, int(model.model_version))
    detector = _detectors.get(key)
    if detector is None:
        with _lock:
            detector = _detectors.get(key)
            if detector is None:
                bucket, prefix = settings().artifacts_bucket, model.artifact_prefix or ""
                directory = (
                    model_cache_dir()
                    / model.project_name
                    / str(key[1])
                    / str(int(model.created_at.timestamp()))
                )
                for name in ("model.json", "model.onnx"):
                    try:
                        fetch_file(bucket, f"{prefix}{name}", directory / name)
                    except ClientError as error:
                        raise ConflictException(
                            f"The model {model.model_arn} cannot be served: its artifact "
                            f"s3://{bucket}/{prefix}{name} cannot be read "
                            f"({error.response.get('Error', {}).get('Code', 'error')}). "
                            "Stop the model, then train a new version.",
                            model.model_arn,
                            ResourceType.MODEL,
                        ) from None
                threads = settings().inference_threads or None
                detector = _detectors[key] = Detector.load(directory, threads=threads)
    return detector


def forget(project_name: str, model_version: int) -> None:
    _detectors.pop((project_name, int(model_version)), None)


def check_image(body: bytes) -> None:
    """L4V's image rules from the header alone (format, size, 8 MB): nothing is decoded here."""
    try:
        inspect_header(body, len(body))
    except ImageRuleError as error:
        raise ValidationException(f"The image {error}.") from None


def emit(metrics: EphemeralMetrics) -> None:
    """Writes the request's EMF record as one line, never interleaved with another thread's."""
    record = metrics.serialize_metric_set()
    line = json.dumps(record, separators=(",", ":")) + "\n"
    with _emit_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


def detect_anomalies(project_name: str, model_version: str, content_type: str, body: bytes) -> dict[str, Any]:
    # One metrics object per request: a shared one was flushed by one thread while another wrote.
    metrics = request_metrics(settings().metrics_namespace)
    try:
        return _detect(metrics, project_name, model_version, content_type, body)
    finally:
        if metrics.metric_set:
            emit(metrics)


def _detect(
    metrics: EphemeralMetrics, project_name: str, model_version: str, content_type: str, body: bytes
) -> dict[str, Any]:
    from openlookout.ml.serving.images import InvalidImageError

    model = get_model(project_name, model_version)
    metrics.add_dimension(name="ProjectName", value=project_name)
    metrics.add_dimension(name="ModelVersion", value=str(int(model.model_version)))
    if model.status != ModelStatus.HOSTED:
        metrics.add_metric(name="ErrorCount", unit=MetricUnit.Count, value=1)
        raise ConflictException(
            f"The model {model.model_arn} is {model.status}, not HOSTED. Start it with StartModel "
            "and wait until it is HOSTED before calling DetectAnomalies.",
            model.model_arn,
            ResourceType.MODEL,
        )
    media_type = content_type.split(";")[0].strip().lower()
    started = time.perf_counter()
    try:
        if media_type not in CONTENT_TYPES:
            raise ValidationException(CONTENT_TYPE_MESSAGE)
        check_image(body)
        try:
            result = _detector(model).detect(body)  # the one decode
        except InvalidImageError as error:
            raise ValidationException(f"The image cannot be decoded: {error}") from None
    except ValidationException:
        metrics.add_metric(name="InvalidImageCount", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="ErrorCount", unit=MetricUnit.Count, value=1)
        raise
    except ConflictException:
        metrics.add_metric(name="ErrorCount", unit=MetricUnit.Count, value=1)
        raise
    elapsed_ms = (time.perf_counter() - started) * 1000
    metrics.add_metric(name="ProcessedImageCount", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="DetectedAnomalyCount", unit=MetricUnit.Count, value=int(result.is_anomalous))
    metrics.add_metric(name="SuccessfulRequestCount", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="Time", unit=MetricUnit.Milliseconds, value=elapsed_ms)
    return {"DetectAnomalyResult": result.to_l4v(segmentation=True)}


def load_and_check(project_name: str, model_version: int) -> dict[str, Any]:
    """Hosting step: fetch the artifact, build the session, and run one image through it."""
    import numpy as np
    from PIL import Image

    model = get_model(project_name, model_version)
    forget(project_name, model_version)
    started = time.perf_counter()
    detector = _detector(model)
    size = int(detector.model_manifest.input_size)
    probe = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), 128, dtype=np.uint8)).save(probe, format="PNG")
    result = detector.detect(probe.getvalue())
    if not 0.0 <= result.confidence <= 1.0:
        raise RuntimeError(f"the model answered a confidence of {result.confidence}")
    return {"Loaded": True, "Seconds": round(time.perf_counter() - started, 3)}
