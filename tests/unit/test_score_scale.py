"""One score scale: the report's histogram shows the anomaly score (0 to 1, 0.5 at the threshold),
the scale of DetectAnomalies' Confidence and of the console's histogram (console/src/evaluation.ts)."""

from __future__ import annotations

import numpy as np

from openlookout.ml.evaluation.plots import plot_curve, plot_scores
from openlookout.ml.evaluation.results import ImageResult


def result(label: bool, anomaly_score: float, raw_score: float) -> ImageResult:
    return ImageResult("s3://b/x.png", label, anomaly_score >= 0.5, 0.9, anomaly_score, raw_score, None, [])


def test_the_histogram_is_on_the_0_to_1_anomaly_score_with_the_threshold_in_the_middle() -> None:
    # Raw scores far from 0..1: the picture must not follow them.
    image = plot_scores([result(False, 0.1, 40.0), result(True, 0.95, 90.0)], 0.5)
    rgb = np.asarray(image.convert("RGB")).astype(int)
    left, right = 110, 560 - 14  # plot_scores' margins
    middle = round(left + 0.5 * (right - left))
    line = rgb[40:160, middle - 1 : middle + 2].sum(axis=-1).min(axis=1)
    assert (line < 60).all(), "the threshold line is in the middle of the axis"
    coloured = (rgb.max(axis=-1) - rgb.min(axis=-1)) > 80  # the green and red bars
    bars = np.where(coloured[:, left:right].any(axis=0))[0] / (right - left)
    assert bars.min() < 0.15 and bars.max() > 0.9  # the two images' bars at 0.1 and 0.95 of the axis


def test_a_perfect_roc_curve_is_drawn_inside_the_frame() -> None:
    image = plot_curve(np.array([0.0, 0.0, 1.0]), np.array([0.0, 1.0, 1.0]), "ROC", "fpr", "tpr", "AUROC 1")
    rgb = np.asarray(image.convert("RGB")).astype(int)
    blue = (abs(rgb[..., 0] - 0x1F) < 30) & (abs(rgb[..., 1] - 0x77) < 30) & (abs(rgb[..., 2] - 0xB4) < 30)
    frame = rgb.sum(axis=-1) < 60
    rows, cols = np.where(blue)
    # The curve's top edge (tpr = 1) and left edge (fpr = 0) are blue, and the black frame lies outside them.
    top, left = rows.min(), cols.min()
    assert frame[:top, left + 50].any() and frame[top + 50, :left].any()
    assert not frame[top, left + 50 : left + 100].any()  # no black drawn over the curve
