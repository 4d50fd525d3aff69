"""Evaluation: metrics, per-image results, L4V's evaluation files and a PNG report (no torch).

evaluate() runs a Detector (the exported ONNX graph, i.e. exactly what will be served) over labeled test
images. Image metrics: precision/recall/F1 at the model's threshold, ROC AUC, average precision.
With masks: pixel ROC AUC (maps and masks resized to at most `pixel_eval_size` on the long side) and, per
anomaly class, pixel precision/recall/F1 and average IoU (L4V's PixelAnomalyClassMetrics).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from .images import ImageInput, load_mask, open_image
from .inference import DetectionResult, Detector
from .masks import hex_to_rgb
from .metrics import auroc, average_precision, pr_curve, precision_recall_f1, roc_curve


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


@dataclass
class Evaluation:
    metrics: dict[str, Any]
    images: list[ImageResult]
    threshold: float
    curves: dict[str, np.ndarray] = field(default_factory=dict)
    overlays: list[tuple[str, Image.Image]] = field(default_factory=list)
    number_of_training_images: int = 0

    # ---- L4V files (l4v-behaviour.md 4.5) ----
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

    def write_report(self, directory: str | Path) -> list[Path]:
        """roc.png, pr.png, scores.png and overlays/*.png."""
        d = Path(directory)
        (d / "overlays").mkdir(parents=True, exist_ok=True)
        out = []
        c = self.curves
        if "fpr" in c:
            out.append(
                _save(
                    plot_curve(
                        c["fpr"],
                        c["tpr"],
                        "ROC",
                        "false positive rate",
                        "true positive rate",
                        f"AUROC {self.metrics['image_auroc']:.4f}",
                    ),
                    d / "roc.png",
                )
            )
            out.append(
                _save(
                    plot_curve(
                        c["recall"],
                        c["precision"],
                        "Precision-recall",
                        "recall",
                        "precision",
                        f"AP {self.metrics['average_precision']:.4f}",
                    ),
                    d / "pr.png",
                )
            )
        out.append(_save(plot_scores(self.images, self.threshold), d / "scores.png"))
        for name, img in self.overlays:
            out.append(_save(img, d / "overlays" / f"{name}.png"))
        return out


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _num(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _save(img: Image.Image, p: Path) -> Path:
    img.save(p)
    return p


def _downsize(shape: tuple[int, int], limit: int) -> tuple[int, int]:
    h, w = shape
    s = min(1.0, limit / max(h, w))
    return max(1, round(w * s)), max(1, round(h * s))


def evaluate(
    detector: Detector,
    samples: Sequence[TestSample],
    *,
    number_of_training_images: int = 0,
    pixel_eval_size: int = 256,
    overlays: int = 12,
    progress: Callable[[str], None] | None = None,
) -> Evaluation:
    """Run the detector on every sample and compute L4V's metrics plus pixel metrics.

    `progress` gets "Evaluating: i of n" after each image (the caller throttles)."""
    results: list[ImageResult] = []
    scores, labels = [], []
    pix_scores, pix_labels = [], []
    cls_stats: dict[str, dict[str, float]] = {}
    kept: list[tuple[float, str, DetectionResult, TestSample]] = []
    pixel_thr = detector.calibration.pixel_threshold
    for i, s in enumerate(samples):
        ref = s.source_ref or (
            os.fspath(s.image) if isinstance(s.image, (str, os.PathLike)) else f"image-{i}"
        )
        r = detector.detect(s.image)
        if progress is not None:
            progress(f"Evaluating: {i + 1} of {len(samples)}")
        gt = load_mask(s.mask, (r.width, r.height)) if s.mask is not None else None
        if gt is None and not s.is_anomalous:
            gt = np.zeros((r.height, r.width), dtype=bool)
        iou = None
        if gt is not None:
            size = _downsize((r.height, r.width), pixel_eval_size)
            m_small = np.asarray(
                Image.fromarray(r.anomaly_map, mode="F").resize(size, Image.Resampling.BILINEAR)
            )
            g_small = (
                np.asarray(Image.fromarray(gt.astype(np.uint8) * 255).resize(size, Image.Resampling.NEAREST))
                > 127
            )
            pix_scores.append(m_small.ravel())
            pix_labels.append(g_small.ravel())
            pred = r.anomaly_map >= pixel_thr if r.is_anomalous else np.zeros_like(gt)
            union = int((pred | gt).sum())
            iou = float((pred & gt).sum() / union) if union else None
            if s.is_anomalous:
                name = s.class_name or "anomaly"
                st = cls_stats.setdefault(name, {"tp": 0, "fp": 0, "fn": 0, "iou_sum": 0.0, "n": 0})
                st["tp"] += int((pred & gt).sum())
                st["fp"] += int((pred & ~gt).sum())
                st["fn"] += int((~pred & gt).sum())
                st["iou_sum"] += iou or 0.0
                st["n"] += 1
        found = [a["Name"] for a in r.anomalies[1:]]
        results.append(
            ImageResult(
                ref,
                bool(s.is_anomalous),
                r.is_anomalous,
                r.confidence,
                r.anomaly_score,
                r.raw_score,
                s.class_name,
                found,
                iou,
            )
        )
        scores.append(r.raw_score)
        labels.append(bool(s.is_anomalous))
        kept.append((r.raw_score, ref, r, s))
        if len(kept) > 4 * overlays:
            kept = _select_overlays(kept, overlays)
    sc, lb = np.asarray(scores), np.asarray(labels)
    precision, recall, f1 = precision_recall_f1(np.array([r.predicted for r in results]), lb)
    metrics: dict[str, Any] = {
        "images": len(results),
        "anomalous_images": int(lb.sum()),
        "threshold": detector.calibration.threshold,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "image_auroc": auroc(sc, lb),
        "average_precision": average_precision(sc, lb),
    }
    if lb.any() and (~lb).any():
        from .calibration import best_f1_threshold

        metrics["best_f1"] = best_f1_threshold(sc, lb)[1]
    if pix_scores and np.concatenate(pix_labels).any():
        metrics["pixel_auroc"] = auroc(np.concatenate(pix_scores), np.concatenate(pix_labels))
    pixel_classes = []
    for name, st in sorted(cls_stats.items()):
        p = st["tp"] / (st["tp"] + st["fp"]) if st["tp"] + st["fp"] else 0.0
        rc = st["tp"] / (st["tp"] + st["fn"]) if st["tp"] + st["fn"] else 0.0
        pixel_classes.append(
            {
                "Precision": p,
                "Recall": rc,
                "F1Score": 2 * p * rc / (p + rc) if p + rc else 0.0,
                "AIOU": st["iou_sum"] / st["n"] if st["n"] else 0.0,
                "ClassName": name,
            }
        )
    metrics["pixel_classes"] = pixel_classes
    curves: dict[str, np.ndarray] = {}
    if lb.any() and (~lb).any():
        fpr, tpr, _ = roc_curve(sc, lb)
        prec, rec, _ = pr_curve(sc, lb)
        curves = {"fpr": fpr, "tpr": tpr, "precision": np.r_[1.0, prec], "recall": np.r_[0.0, rec]}
    ev = Evaluation(
        metrics,
        results,
        detector.calibration.threshold,
        curves,
        number_of_training_images=number_of_training_images,
    )
    ev.overlays = [(_safe(ref), overlay(s.image, r)) for _, ref, r, s in _select_overlays(kept, overlays)]
    return ev


def _select_overlays(kept: list[Any], n: int) -> list[Any]:
    """Highest-scoring anomalous-looking images plus the highest-scoring normal ones (likely errors)."""
    kept = sorted(kept, key=lambda k: -k[0])
    normals = [k for k in kept if not k[3].is_anomalous][: max(1, n // 4)]
    anomalous = [k for k in kept if k[3].is_anomalous]
    # Most and least anomalous defects: the least are where a model misses.
    half = max(1, (n - len(normals)) // 2)
    sel = anomalous[:half] + anomalous[-half:] if len(anomalous) > 2 * half else anomalous
    return sel + normals


def _safe(ref: str) -> str:
    parts = Path(ref).with_suffix("").parts[-2:]
    return "_".join(p for p in parts if p).replace(" ", "_")[:80] or "image"


# ---------------------------------------------------------------------------------------- drawing
def heat_colors(v: np.ndarray) -> np.ndarray:
    """A simple blue-cyan-yellow-red colour map for values in 0-1 (uint8 RGB)."""
    v = np.clip(v, 0, 1)
    r = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return (np.stack([r, g, b], -1) * 255).astype(np.uint8)


def overlay(src: ImageInput, r: DetectionResult, height: int = 256) -> Image.Image:
    """Image | heat map overlay | predicted mask, side by side."""
    img = open_image(src)
    w = max(1, round(img.width * height / img.height))
    base = img.resize((w, height))
    amap = np.asarray(Image.fromarray(r.anomaly_map, mode="F").resize((w, height)))
    lo, hi = float(amap.min()), float(max(amap.max(), r.raw_score))
    heat = Image.fromarray(heat_colors((amap - lo) / max(hi - lo, 1e-6)))
    blend = Image.blend(base, heat, 0.45)
    mask = Image.open(__import__("io").BytesIO(r.anomaly_mask_png)).convert("RGB").resize((w, height))
    out = Image.new("RGB", (3 * w + 8, height + 18), "white")
    out.paste(base, (0, 18))
    out.paste(blend, (w + 4, 18))
    out.paste(mask, (2 * w + 8, 18))
    d = ImageDraw.Draw(out)
    verdict = "ANOMALY" if r.is_anomalous else "normal"
    d.text((2, 2), f"{verdict} conf {r.confidence:.3f} score {r.raw_score:.3f}", fill=(0, 0, 0))
    return out


def plot_curve(
    x: np.ndarray, y: np.ndarray, title: str, xlabel: str, ylabel: str, note: str, size: int = 420
) -> Image.Image:
    m = 48
    img = Image.new("RGB", (size, size), "white")
    d = ImageDraw.Draw(img)
    x0, y0, x1, y1 = m, 24, size - 16, size - m
    d.rectangle((x0, y0, x1, y1), outline=(0, 0, 0))
    for t in np.linspace(0, 1, 6):
        px = x0 + t * (x1 - x0)
        py = y1 - t * (y1 - y0)
        d.line((px, y1, px, y1 + 4), fill=(0, 0, 0))
        d.line((x0 - 4, py, x0, py), fill=(0, 0, 0))
        d.text((px - 8, y1 + 6), f"{t:.1f}", fill=(0, 0, 0))
        d.text((4, py - 6), f"{t:.1f}", fill=(0, 0, 0))
        d.line((px, y0, px, y1), fill=(230, 230, 230))
        d.line((x0, py, x1, py), fill=(230, 230, 230))
    pts = [(x0 + float(a) * (x1 - x0), y1 - float(b) * (y1 - y0)) for a, b in zip(x, y, strict=True)]
    if len(pts) > 1:
        d.line(pts, fill=hex_to_rgb("#1F77B4"), width=2)
    d.text((x0, 6), f"{title}   {note}", fill=(0, 0, 0))
    d.text(((x0 + x1) // 2 - 40, size - 20), xlabel, fill=(0, 0, 0))
    d.text((4, 8), ylabel[:1], fill=(0, 0, 0))
    return img


def plot_scores(
    images: list[ImageResult], threshold: float, size: tuple[int, int] = (520, 300)
) -> Image.Image:
    """Histogram of raw scores, normal (green) vs anomalous (red), with the threshold line."""
    w, h = size
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    s = np.array([r.raw_score for r in images] + [threshold])
    lo, hi = float(s.min()), float(s.max())
    hi = hi if hi > lo else lo + 1
    bins = 40
    x0, y0, x1, y1 = 30, 20, w - 10, h - 30
    counts = []
    for lab in (False, True):
        v = np.array([r.raw_score for r in images if r.label == lab])
        counts.append(np.histogram(v, bins=bins, range=(lo, hi))[0])
    top = max(1, max(int(c.max()) for c in counts))
    bw = (x1 - x0) / bins
    for c, col in zip(counts, ((44, 160, 44, 140), (214, 39, 40, 140)), strict=True):
        layer = Image.new("RGBA", size, (0, 0, 0, 0))
        ld = ImageDraw.Draw(layer)
        for i, n in enumerate(c):
            if n:
                ld.rectangle((x0 + i * bw, y1 - n / top * (y1 - y0), x0 + (i + 1) * bw - 1, y1), fill=col)
        img.paste(layer, (0, 0), layer)
    tx = x0 + (threshold - lo) / (hi - lo) * (x1 - x0)
    d.line((tx, y0, tx, y1), fill=(0, 0, 0), width=2)
    d.rectangle((x0, y0, x1, y1), outline=(0, 0, 0))
    d.text((x0, 4), f"raw scores: normal (green), anomalous (red); threshold {threshold:.3f}", fill=(0, 0, 0))
    d.text((x0, y1 + 6), f"{lo:.2f}", fill=(0, 0, 0))
    d.text((x1 - 40, y1 + 6), f"{hi:.2f}", fill=(0, 0, 0))
    return img
