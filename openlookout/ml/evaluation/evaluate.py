"""evaluate(): a model's metrics on labelled test images (no torch).

evaluate() runs a Detector (the exported ONNX graph, i.e. exactly what will be served) over labeled test
images. Image metrics: precision/recall/F1 at the model's threshold, ROC AUC, average precision.
With masks: pixel ROC AUC (maps and masks resized to at most `pixel_eval_size` on the long side) and, per
anomaly class, pixel precision/recall/F1 and average IoU (L4V's PixelAnomalyClassMetrics).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from ..serving.inference import DetectionResult, Detector
from ..serving.masks import load_mask
from .metrics import auroc, average_precision, pr_curve, precision_recall_f1, roc_curve
from .plots import labelled_overlay, png_bytes
from .results import Evaluation, ImageResult, TestSample
from .thresholds import best_f1_threshold


def _downsize(shape: tuple[int, int], limit: int) -> tuple[int, int]:
    h, w = shape
    s = min(1.0, limit / max(h, w))
    return max(1, round(w * s)), max(1, round(h * s))


@dataclass
class _PixelTally:
    """Pixel scores and labels for the pixel AUROC, and per-class pixel counts for L4V's
    PixelAnomalyClassMetrics, gathered one image at a time."""

    eval_size: int
    scores: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    classes: dict[str, dict[str, float]] = field(default_factory=dict)
    # Pixels painted by the model's own mask that are (tp) or are not (fp) defect, over every image with
    # a ground truth (a normal image's painted pixels are all false), and defect pixels missed (fn).
    painted: dict[str, int] = field(default_factory=lambda: {"tp": 0, "fp": 0, "fn": 0})

    def add(self, r: DetectionResult, gt: np.ndarray, sample: TestSample, pixel_thr: float) -> float | None:
        """Tally one image with a ground-truth mask; returns the IoU of its predicted mask."""
        size = _downsize((r.height, r.width), self.eval_size)
        m_small = np.asarray(Image.fromarray(r.anomaly_map, mode="F").resize(size, Image.Resampling.BILINEAR))
        gt_small = Image.fromarray(gt.astype(np.uint8) * 255).resize(size, Image.Resampling.NEAREST)
        self.scores.append(m_small.ravel())
        self.labels.append(np.asarray(gt_small).ravel() > 127)
        # Only an anomalous verdict paints pixels.
        pred = r.anomaly_map >= pixel_thr if r.is_anomalous else np.zeros_like(gt)
        union = int((pred | gt).sum())
        hits = int((pred & gt).sum())
        self.painted["tp"] += hits
        self.painted["fp"] += int(pred.sum()) - hits
        self.painted["fn"] += int(gt.sum()) - hits
        iou = float((pred & gt).sum() / union) if union else None
        if sample.is_anomalous:
            st = self.classes.setdefault(
                sample.class_name or "anomaly", {"tp": 0, "fp": 0, "fn": 0, "iou_sum": 0.0, "n": 0}
            )
            st["tp"] += int((pred & gt).sum())
            st["fp"] += int((pred & ~gt).sum())
            st["fn"] += int((~pred & gt).sum())
            st["iou_sum"] += iou or 0.0
            st["n"] += 1
        return iou

    def auroc(self) -> float | None:
        if not self.scores or not np.concatenate(self.labels).any():
            return None
        return auroc(np.concatenate(self.scores), np.concatenate(self.labels))

    def mask_precision_recall(self) -> tuple[float | None, float | None]:
        """Pixel precision and recall of the model's masks (None without painted or defect pixels)."""
        tp, fp, fn = self.painted["tp"], self.painted["fp"], self.painted["fn"]
        return (tp / (tp + fp) if tp + fp else None), (tp / (tp + fn) if tp + fn else None)

    def class_metrics(self) -> list[dict[str, Any]]:
        out = []
        for name, st in sorted(self.classes.items()):
            p = st["tp"] / (st["tp"] + st["fp"]) if st["tp"] + st["fp"] else 0.0
            rc = st["tp"] / (st["tp"] + st["fn"]) if st["tp"] + st["fn"] else 0.0
            f1 = 2 * p * rc / (p + rc) if p + rc else 0.0
            aiou = st["iou_sum"] / st["n"] if st["n"] else 0.0
            out.append({"Precision": p, "Recall": rc, "F1Score": f1, "AIOU": aiou, "ClassName": name})
        return out


def _ground_truth(sample: TestSample, r: DetectionResult) -> np.ndarray | None:
    """The sample's mask at the image's size; all background for a normal image without one."""
    if sample.mask is not None:
        return load_mask(sample.mask, (r.width, r.height))
    return None if sample.is_anomalous else np.zeros((r.height, r.width), dtype=bool)


def _judge(
    detector: Detector, sample: TestSample, ref: str, tally: _PixelTally, with_picture: bool
) -> ImageResult:
    """Detect one test image and compare the verdict (and mask) with its label."""
    r = detector.detect(sample.image)
    gt = _ground_truth(sample, r)
    iou = None if gt is None else tally.add(r, gt, sample, detector.calibration.pixel_threshold)
    label = bool(sample.is_anomalous)
    picture = None
    if with_picture or r.is_anomalous != label:
        overlay = labelled_overlay(sample.image, r, gt, label, ref, detector.calibration.threshold)
        picture = png_bytes(overlay)
    found = [a["Name"] for a in r.anomalies[1:]]
    return ImageResult(
        ref,
        label,
        r.is_anomalous,
        r.confidence,
        r.anomaly_score,
        r.raw_score,
        sample.class_name,
        found,
        iou,
        picture,
    )


def _image_metrics(results: list[ImageResult], threshold: float) -> dict[str, Any]:
    """L4V's image metrics at the model's own threshold, plus AUROC, AP and the best reachable F1."""
    sc = np.asarray([r.raw_score for r in results])
    lb = np.asarray([r.label for r in results], dtype=bool)
    precision, recall, f1 = precision_recall_f1(np.array([r.predicted for r in results]), lb)
    metrics: dict[str, Any] = {
        "images": len(results),
        "anomalous_images": int(lb.sum()),
        "threshold": threshold,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "image_auroc": auroc(sc, lb),
        "average_precision": average_precision(sc, lb),
    }
    if lb.any() and (~lb).any():
        metrics["best_f1"] = best_f1_threshold(sc, lb)[1]
    return metrics


def _curves(results: list[ImageResult]) -> dict[str, np.ndarray]:
    """ROC and precision-recall curves of the raw scores (none without both kinds of image)."""
    sc = np.asarray([r.raw_score for r in results])
    lb = np.asarray([r.label for r in results], dtype=bool)
    if not (lb.any() and (~lb).any()):
        return {}
    fpr, tpr, _ = roc_curve(sc, lb)
    prec, rec, _ = pr_curve(sc, lb)
    return {"fpr": fpr, "tpr": tpr, "precision": np.r_[1.0, prec], "recall": np.r_[0.0, rec]}


def evaluate(
    detector: Detector,
    samples: Sequence[TestSample],
    *,
    number_of_training_images: int = 0,
    pixel_eval_size: int = 256,
    overlays: int = 500,
    progress: Callable[[str], None] | None = None,
) -> Evaluation:
    """Run the detector on every sample and compute L4V's metrics plus pixel metrics.

    `progress` gets "Evaluating: i of n" after each image (the caller throttles). The first
    `overlays` images get a labelled overlay (prediction, ground-truth outline, right or
    wrong) for the report; beyond that only the wrong ones do."""
    tally = _PixelTally(pixel_eval_size)
    results: list[ImageResult] = []
    for i, s in enumerate(samples):
        ref = s.source_ref or (
            os.fspath(s.image) if isinstance(s.image, (str, os.PathLike)) else f"image-{i}"
        )
        results.append(_judge(detector, s, ref, tally, with_picture=i < overlays))
        if progress is not None:
            progress(f"Evaluating: {i + 1} of {len(samples)}")
    threshold = detector.calibration.threshold
    metrics = _image_metrics(results, threshold)
    pixel_auroc = tally.auroc()
    if pixel_auroc is not None:
        metrics["pixel_auroc"] = pixel_auroc
    metrics["pixel_precision"], metrics["pixel_recall"] = tally.mask_precision_recall()
    metrics["pixel_classes"] = tally.class_metrics()
    return Evaluation(
        metrics, results, threshold, _curves(results), number_of_training_images=number_of_training_images
    )
