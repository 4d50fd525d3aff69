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
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

from .calibration import best_f1_threshold
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
    overlay_png: bytes | None = field(default=None, repr=False)

    @property
    def outcome(self) -> str:
        """true/false positive/negative, anomalous = positive."""
        if self.label == self.predicted:
            return "true positive" if self.label else "true negative"
        return "false positive" if self.predicted else "false negative"


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

    def write_report(self, directory: str | Path) -> list[Path]:
        """index.html (self-contained), roc.png, pr.png, scores.png and overlays/*.png (worst first)."""
        d = Path(directory)
        (d / "overlays").mkdir(parents=True, exist_ok=True)
        out = []
        c = self.curves
        op = self.operating_point()
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
                        (op["fpr"], op["tpr"]),
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
                        (op["recall"], op["precision"]),
                    ),
                    d / "pr.png",
                )
            )
        out.append(_save(plot_scores(self.images, self.threshold), d / "scores.png"))
        for rank, r in enumerate(worst_first(self.images)):
            if r.overlay_png is not None:
                target = d / "overlays" / f"{rank:03d}-{_safe(r.source_ref)}.png"
                target.write_bytes(r.overlay_png)
                out.append(target)
        from .report import write_index

        out.append(write_index(self, d / "index.html", {p.name: p for p in out}))
        return out


def worst_first(images: list[ImageResult]) -> list[ImageResult]:
    """False positives (highest score first), false negatives (lowest first), then the right ones."""

    def key(r: ImageResult) -> tuple[int, float]:
        if r.outcome == "false positive":
            return (0, -r.raw_score)
        if r.outcome == "false negative":
            return (1, r.raw_score)
        return (2, -r.raw_score if r.label else r.raw_score)

    return sorted(images, key=key)


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


@dataclass
class _PixelTally:
    """Pixel scores and labels for the pixel AUROC, and per-class pixel counts for L4V's
    PixelAnomalyClassMetrics, gathered one image at a time."""

    eval_size: int
    scores: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    classes: dict[str, dict[str, float]] = field(default_factory=dict)

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
        picture = _png(overlay)
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
    metrics["pixel_classes"] = tally.class_metrics()
    return Evaluation(
        metrics, results, threshold, _curves(results), number_of_training_images=number_of_training_images
    )


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


def font(size: int = 13) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled scalable font: readable at any size, nothing to install."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def _png(img: Image.Image) -> bytes:
    buffer = __import__("io").BytesIO()
    img.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def _outline(gt: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """A mask (mode L) of the ground truth's boundary, 2 px wide, at `size`."""
    region = Image.fromarray(gt.astype(np.uint8) * 255).resize(size, Image.Resampling.NEAREST)
    return ImageChops.subtract(
        region.filter(ImageFilter.MaxFilter(3)), region.filter(ImageFilter.MinFilter(3))
    )


def labelled_overlay(
    src: ImageInput,
    r: DetectionResult,
    gt: np.ndarray | None,
    truth: bool,
    ref: str,
    threshold: float,
    height: int = 220,
) -> Image.Image:
    """The image with its ground-truth outline | prediction (heat map and mask) | a caption that says
    right or wrong, in a frame coloured by it."""
    img = open_image(src)
    w = max(1, round(img.width * height / img.height))
    base = img.resize((w, height))
    left = base.copy()
    if gt is not None and gt.any():
        left.paste(Image.new("RGB", (w, height), (255, 215, 0)), (0, 0), _outline(gt, (w, height)))
    amap = np.asarray(Image.fromarray(r.anomaly_map, mode="F").resize((w, height)))
    lo, hi = float(amap.min()), float(max(amap.max(), r.raw_score))
    heat = Image.blend(base, Image.fromarray(heat_colors((amap - lo) / max(hi - lo, 1e-6))), 0.45)
    mask = Image.open(__import__("io").BytesIO(r.anomaly_mask_png)).convert("RGB").resize((w, height))
    painted = mask.convert("L").point(lambda v: 0 if v >= 250 else 255)
    right = base.copy()
    right.paste(Image.blend(base, mask, 0.65), (0, 0), painted)
    if gt is not None and gt.any():
        right.paste(Image.new("RGB", (w, height), (255, 215, 0)), (0, 0), _outline(gt, (w, height)))
    correct = r.is_anomalous == truth
    frame = (0, 128, 0) if correct else (200, 0, 0)
    band, pad = 68, 4
    out = Image.new("RGB", (3 * w + 4 * pad, height + band + pad), frame)
    out.paste(Image.new("RGB", (3 * w + 2 * pad, band - pad), "white"), (pad, pad))
    for k, panel in enumerate((left, heat, right)):
        out.paste(panel, (pad + k * (w + pad), band))
    d = ImageDraw.Draw(out)
    outcome = ImageResult(ref, truth, r.is_anomalous, 0, 0, 0, None, []).outcome
    verdict = ("RIGHT: " if correct else "WRONG: ") + outcome
    classes = ", ".join(a["Name"] for a in r.anomalies[1:]) or "none"
    d.text((pad + 4, pad + 2), verdict, fill=frame, font=font(15))
    said = "anomaly" if r.is_anomalous else "normal"
    lines = (
        f"truth {'anomaly' if truth else 'normal'}, predicted {said}",
        f"score {r.raw_score:.2f} (threshold {threshold:.2f}), confidence {r.confidence:.2f}",
        f"classes found: {classes}",
    )
    for k, line in enumerate(lines):
        d.text((pad + 4, pad + 22 + 14 * k), _fit(d, line, 3 * w), fill=(0, 0, 0), font=font(11))
    name = _safe(ref)
    d.text(
        (3 * w + 2 * pad - d.textlength(name, font=font(11)), pad + 4), name, fill=(90, 90, 90), font=font(11)
    )
    return out


def _fit(d: ImageDraw.ImageDraw, text: str, width: float) -> str:
    """The text, shortened with an ellipsis until it fits `width` pixels."""
    while len(text) > 4 and d.textlength(text, font=font(11)) > width:
        text = text[:-5] + "..."
    return text


def plot_curve(
    x: np.ndarray,
    y: np.ndarray,
    title: str,
    xlabel: str,
    ylabel: str,
    note: str,
    point: tuple[float, float] | None = None,
    size: int = 420,
) -> Image.Image:
    """A curve with labelled axes; `point` (the model's threshold) is marked and labelled."""
    img = Image.new("RGB", (size, size), "white")
    d = ImageDraw.Draw(img)
    x0, y0, x1, y1 = 64, 34, size - 16, size - 50
    small, big = font(11), font(14)
    d.rectangle((x0, y0, x1, y1), outline=(0, 0, 0))
    for t in np.linspace(0, 1, 6):
        px = x0 + t * (x1 - x0)
        py = y1 - t * (y1 - y0)
        d.line((px, y0, px, y1), fill=(230, 230, 230))
        d.line((x0, py, x1, py), fill=(230, 230, 230))
        d.line((px, y1, px, y1 + 4), fill=(0, 0, 0))
        d.line((x0 - 4, py, x0, py), fill=(0, 0, 0))
        d.text((px, y1 + 6), f"{t:.1f}", fill=(0, 0, 0), font=small, anchor="ma")
        d.text((x0 - 6, py), f"{t:.1f}", fill=(0, 0, 0), font=small, anchor="rm")
    d.rectangle((x0, y0, x1, y1), outline=(0, 0, 0))
    pts = [(x0 + float(a) * (x1 - x0), y1 - float(b) * (y1 - y0)) for a, b in zip(x, y, strict=True)]
    if len(pts) > 1:
        d.line(pts, fill=hex_to_rgb("#1F77B4"), width=2)
    if point is not None:
        px, py = x0 + point[0] * (x1 - x0), y1 - point[1] * (y1 - y0)
        d.ellipse((px - 5, py - 5, px + 5, py + 5), outline=(214, 39, 40), width=2)
        label = f"threshold ({point[0]:.2f}, {point[1]:.2f})"
        anchor = "ra" if px > (x0 + x1) / 2 else "la"
        d.text(
            (px + (-8 if anchor == "ra" else 8), py + 6), label, fill=(214, 39, 40), font=small, anchor=anchor
        )
    d.text((x0, 8), f"{title}   {note}", fill=(0, 0, 0), font=big)
    d.text(((x0 + x1) / 2, size - 8), xlabel, fill=(0, 0, 0), font=small, anchor="md")
    # The y label, drawn on its own strip and turned upright so it is never clipped.
    strip = Image.new("RGB", (y1 - y0, 16), "white")
    ImageDraw.Draw(strip).text(((y1 - y0) / 2, 8), ylabel, fill=(0, 0, 0), font=small, anchor="mm")
    img.paste(strip.rotate(90, expand=True), (6, y0))
    return img


def plot_scores(images: list[ImageResult], threshold: float, size: tuple[int, int] = (560, 0)) -> Image.Image:
    """One score histogram per class (normal, then each anomaly class), the threshold on each."""
    groups: dict[str, list[float]] = {"normal": []}
    for r in images:
        groups.setdefault((r.class_name or "anomaly") if r.label else "normal", []).append(r.raw_score)
    row, top_margin, left, right = 70, 30, 110, 14
    w = size[0]
    h = top_margin + row * len(groups) + 34
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    every = np.array([r.raw_score for r in images] + [threshold])
    lo, hi = float(every.min()), float(every.max())
    hi = hi if hi > lo else lo + 1
    bins, x0, x1 = 40, left, w - right
    bw = (x1 - x0) / bins
    tx = x0 + (threshold - lo) / (hi - lo) * (x1 - x0)
    for k, (name, values) in enumerate(groups.items()):
        y0, y1 = top_margin + k * row + 6, top_margin + (k + 1) * row
        counts = np.histogram(np.array(values), bins=bins, range=(lo, hi))[0]
        peak = max(1, int(counts.max()) if counts.size else 1)
        color = (44, 160, 44) if name == "normal" else (214, 39, 40)
        for i, n in enumerate(counts):
            if n:
                d.rectangle((x0 + i * bw, y1 - n / peak * (y1 - y0), x0 + (i + 1) * bw - 1, y1), fill=color)
        d.line((x0, y1, x1, y1), fill=(0, 0, 0))
        d.text((x0 - 8, (y0 + y1) / 2), f"{name} ({len(values)})", fill=(0, 0, 0), font=font(12), anchor="rm")
    d.line((tx, top_margin, tx, h - 34), fill=(0, 0, 0), width=2)
    d.text((tx, h - 30), f"threshold {threshold:.2f}", fill=(0, 0, 0), font=font(11), anchor="ma")
    d.text((x0, h - 16), f"{lo:.2f}", fill=(0, 0, 0), font=font(11))
    d.text((x1, h - 16), f"{hi:.2f}", fill=(0, 0, 0), font=font(11), anchor="ra")
    d.text(
        (8, 8),
        "Anomaly score per class (raw score; right of the line = anomalous)",
        fill=(0, 0, 0),
        font=font(13),
    )
    return img
