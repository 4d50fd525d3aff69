"""DetectAnomalies and the hosting checks: the onnxruntime side, without torch.

A model's artifact (model.onnx + model.json) is fetched once per execution environment and
kept; every call checks that the model is HOSTED, validates the image as L4V did, runs the
graph and emits L4V's CloudWatch metrics through Powertools Metrics (EMF).
"""

from __future__ import annotations

import io
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from openlookout.api.errors import ConflictException, ResourceType, ValidationException
from openlookout.services.models import ModelStatus, get_model
from openlookout.settings import settings
from openlookout.storage.artifacts import fetch_file
from openlookout.storage.tables import ModelItem

metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "LookoutVision"))

CONTENT_TYPES = ("image/jpeg", "image/png")
CONTENT_TYPE_MESSAGE = "content-type must be one of the following. image/jpeg, image/png"
MAX_IMAGE_BYTES = 8 * 1024 * 1024  # L4V's limit for dataset images; DetectAnomalies' own was undocumented
MIN_SIDE, MAX_SIDE = 64, 4096
_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}

_detectors: dict[tuple[str, int], Any] = {}
_lock = threading.Lock()
_cache_dir = Path(os.environ.get("OPENLOOKOUT_MODEL_CACHE", tempfile.gettempdir())) / "openlookout-models"


def _detector(model: ModelItem) -> Any:
    """The model's Detector, loaded once per process (an execution environment, or `serve`)."""
    from openlookout.ml.inference import Detector

    key = (model.project_name, int(model.model_version))
    detector = _detectors.get(key)
    if detector is None:
        with _lock:
            detector = _detectors.get(key)
            if detector is None:
                bucket, prefix = settings().artifacts_bucket, model.artifact_prefix or ""
                directory = (
                    _cache_dir / model.project_name / str(key[1]) / str(int(model.created_at.timestamp()))
                )
                fetch_file(bucket, f"{prefix}model.json", directory / "model.json")
                fetch_file(bucket, f"{prefix}model.onnx", directory / "model.onnx")
                threads = int(os.environ.get("OPENLOOKOUT_INFERENCE_THREADS", "0")) or None
                detector = _detectors[key] = Detector.load(directory, threads=threads)
    return detector


def forget(project_name: str, model_version: int) -> None:
    _detectors.pop((project_name, int(model_version)), None)


def _check_image(body: bytes) -> None:
    from PIL import Image, UnidentifiedImageError

    if len(body) > MAX_IMAGE_BYTES:
        raise ValidationException(
            f"The image is {len(body)} bytes; the limit is {MAX_IMAGE_BYTES} bytes (8 MB)."
        )
    if not any(body.startswith(signature) for signature in _SIGNATURES):
        raise ValidationException("The image is neither a PNG nor a JPEG file.")
    try:
        with Image.open(io.BytesIO(body)) as image:
            width, height = image.size
            image.load()  # a truncated file fails here, not later in the graph
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValidationException(f"The image cannot be decoded: {error}") from None
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise ValidationException(
            f"The image is {width}x{height} pixels; each side must be {MIN_SIDE} to {MAX_SIDE} pixels."
        )


def detect_anomalies(project_name: str, model_version: str, content_type: str, body: bytes) -> dict[str, Any]:
    model = get_model(project_name, model_version)
    version = str(int(model.model_version))
    metrics.add_dimension(name="ProjectName", value=project_name)
    metrics.add_dimension(name="ModelVersion", value=version)
    if model.status != ModelStatus.HOSTED:
        metrics.add_metric(name="ErrorCount", unit=MetricUnit.Count, value=1)
        raise ConflictException(
            f"The model {model.model_arn} is {model.status}, not HOSTED. Start it with StartModel "
            "and wait until it is HOSTED before calling DetectAnomalies.",
            model.model_arn,
            ResourceType.MODEL,
        )
    media_type = content_type.split(";")[0].strip().lower()
    try:
        if media_type not in CONTENT_TYPES:
            raise ValidationException(CONTENT_TYPE_MESSAGE)
        _check_image(body)
    except ValidationException:
        metrics.add_metric(name="InvalidImageCount", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="ErrorCount", unit=MetricUnit.Count, value=1)
        raise
    started = time.perf_counter()
    result = _detector(model).detect(body)
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
    size = int(detector.manifest.input_size)
    probe = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), 128, dtype=np.uint8)).save(probe, format="PNG")
    result = detector.detect(probe.getvalue())
    if not 0.0 <= result.confidence <= 1.0:
        raise RuntimeError(f"the model answered a confidence of {result.confidence}")
    return {"Loaded": True, "Seconds": round(time.perf_counter() - started, 3)}
