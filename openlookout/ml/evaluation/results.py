"""What an evaluation produces (no torch): per-image results, the metrics, and L4V's evaluation files
(EvaluationManifest JSON lines and EvaluationResult). evaluate.py fills them; report.py draws them."""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..serving.images import ImageInput


def outcome(label: bool, predicted: bool) -> str:
    """true/false positive/negative, anomalous = positive."""
    if label == predicted:
        return "true positive" if label else "true negative"
    return "false positive" if predicted else "false negative"


@dataclass
class TestSample:
    __test__ = False  # not a pytest test class

    image: ImageInput
    is_anomalous: bool
    mask: ImageInput | None = None
    class_name: str | None = None
    source_ref: str | None = None


@dataclass
class ImageResult:
    source_ref: str
    label: bool
    predicted: bool
    confidence: float
    anomaly_score: float
    raw_score: float
    class_name: str | None
    predicted_classes: list[str]
    iou: float | None = None
    overlay_png: bytes | None = field(default=None, repr=False)

    @property
    def outcome(self) -> str:
        """true/false positive/negative, anomalous = positive."""
        return outcome(self.label, self.predicted)


@dataclass
class Evaluation:
    metrics: dict[str, Any]
    images: list[ImageResult]
    threshold: float
    curves: dict[str, np.ndarray] = field(default_factory=dict)
    number_of_training_images: int = 0
    # The model's training record (manifest "training"): shown in the report, with the supervised
    # head's decision and its cross-validation evidence.
    training: dict[str, Any] = field(default_factory=dict)

    # ---- L4V's evaluation files: EvaluationManifest (JSON lines) and EvaluationResult ----
    def manifest_lines(
        self,
        *,
        model_arn: str = "",
        project_name: str = "",
        model_version: str = "",
        label_key: str = "anomaly-label",
    ) -> list[dict[str, Any]]:
        now = _now()
        lines = []
        for r in self.images:
            lines.append(
                {
                    "source-ref": r.source_ref,
                    "source-ref-metadata": {"creation-date": now},
                    label_key: int(r.label),
                    f"{label_key}-metadata": {
                        "class-name": "anomaly" if r.label else "normal",
                        "type": "groundtruth/image-classification",
                        "human-annotated": "yes",
                        "creation-date": now,
                        "job-name": "labeling-job/anomaly-detection",
                    },
                    f"{label_key}-detected": int(r.predicted),
                    f"{label_key}-detected-metadata": {
                        "class-name": "anomaly" if r.predicted else "normal",
                        "confidence": r.confidence,
                        "type": "groundtruth/image-classification",
                        "human-annotated": "no",
                        "creation-date": now,
                        "job-name": "training-job/anomaly-detection",
                        "model-arn": model_arn,
                        "project-name": project_name,
                        "model-version": model_version,
                    },
                }
            )
        return lines

    def write_manifest(self, path: str | Path, **kw: str) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("".join(json.dumps(line) + "\n" for line in self.manifest_lines(**kw)))
        return p

    def result_document(self, *, model_arn: str = "") -> dict[str, Any]:
        m = self.metrics
        agg: dict[str, Any] = {
            "ROCAUC": _num(m["image_auroc"]),
            "AveragePrecision": _num(m["average_precision"]),
            "Precision": m["precision"],
            "Recall": m["recall"],
            "F1Score": m["f1"],
        }
        if m.get("pixel_classes"):
            agg["PixelAnomalyClassMetrics"] = m["pixel_classes"]
        return {
            "Version": 1,
            "EvaluationDetails": {
                "ModelArn": model_arn,
                "EvaluationEndTimestamp": _now(),
                "NumberOfTrainingImages": self.number_of_training_images,
                "NumberOfTestingImages": len(self.images),
            },
            "AggregatedEvaluationResults": {"Metrics": agg},
        }

    def write_result(self, path: str | Path, *, model_arn: str = "") -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.result_document(model_arn=model_arn), indent=2) + "\n")
        return p

    def operating_point(self) -> dict[str, float]:
        """Where the model's threshold sits on the curves (fpr, tpr, precision, recall)."""
        tp = sum(1 for r in self.images if r.label and r.predicted)
        fp = sum(1 for r in self.images if not r.label and r.predicted)
        positives = sum(1 for r in self.images if r.label)
        negatives = len(self.images) - positives
        return {
            "fpr": fp / negatives if negatives else 0.0,
            "tpr": tp / positives if positives else 0.0,
            "precision": tp / (tp + fp) if tp + fp else 1.0,
            "recall": tp / positives if positives else 0.0,
        }


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _num(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)
