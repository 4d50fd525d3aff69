"""Threshold choice from held-out scores (numpy only; every detection method's training uses it).

w_below puts the median held-out normal score at p = 0.05; w_above puts the median labeled anomaly
score at p = 0.95 (or mirrors w_below when there are no labeled anomalies); see serving/calibration.py
for the curve itself.

Without labelled anomalies the threshold is mean + k * std of the held-out normal scores, both taken
after sigma clipping: one held-out "normal" image that looks like a defect (a mislabel, a stray part)
would otherwise lift the threshold for every image after it.
"""

from __future__ import annotations

import numpy as np

from ..serving.calibration import LOGIT_95, Calibration
from .metrics import precision_recall_f1


def best_f1_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Threshold maximising F1 (anomaly = positive), placed midway between neighbouring scores."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    tp = np.cumsum(y)
    fp = np.cumsum(~y)
    pos = max(int(y.sum()), 1)
    f1 = 2 * tp / (tp + fp + pos)
    # Only cut between distinct scores.
    distinct = np.r_[s[1:] < s[:-1], True]
    f1 = np.where(distinct, f1, -1.0)
    i = int(np.argmax(f1))
    t = float(s[i]) if i + 1 >= len(s) else float((s[i] + s[i + 1]) / 2)
    return t, float(f1[i])


def _cut_with_labels(normal_rule: float, normal: np.ndarray, anomalous: np.ndarray, min_gain: float) -> float:
    """The normal-only rule, unless the labelled anomalies show a clearly better cut.

    Ten labelled anomalies and twenty held-out normals are a small sample: their best-F1 cut moves to
    pass one or two images and misses the test set's next ones (few-shot F1 0.90 against 0.94 for the
    normal rule on the suite, #75). The labels move the threshold only when the best cut's F1 on them
    beats the normal rule's by `min_gain`, e.g. when most defects score below the normal rule."""
    scores = np.r_[normal, anomalous]
    labels = np.r_[np.zeros(normal.size), np.ones(anomalous.size)].astype(bool)
    t, best = best_f1_threshold(scores, labels)
    _, _, f1_rule = precision_recall_f1(scores >= normal_rule, labels)
    return t if best - f1_rule >= min_gain else normal_rule


def clipped_mean_std(scores: np.ndarray, clip_sigma: float, min_kept: int = 5) -> tuple[float, float]:
    """Mean and standard deviation after iteratively dropping scores above mean + clip_sigma * std
    (0 = no clipping); at least `min_kept` scores are always kept."""
    kept = np.sort(np.asarray(scores, dtype=np.float64))
    while True:
        mean, std = float(kept.mean()), float(kept.std())
        inside = kept[kept <= mean + clip_sigma * std]
        if clip_sigma <= 0 or inside.size == kept.size or inside.size < min_kept:
            return mean, std
        kept = inside


def calibrate(
    normal_scores: np.ndarray,
    anomaly_scores: np.ndarray | None = None,
    *,
    k_sigma: float = 2.5,
    clip_sigma: float = 2.5,
    margin: float = 0.0,
    label_min_gain: float = 0.1,
    pixel_threshold: float | None = None,
) -> Calibration:
    """Choose the image threshold and the confidence curve from held-out scores."""
    n = np.asarray(normal_scores, dtype=np.float64)
    if n.size == 0:
        raise ValueError("calibration needs at least one held-out normal score")
    a = np.asarray(anomaly_scores if anomaly_scores is not None else [], dtype=np.float64)
    med_n = float(np.median(n))
    mean, spread = clipped_mean_std(n, clip_sigma)
    # Floor the spread so a tiny or degenerate hold-out cannot give a zero-width curve.
    spread = max(spread, 0.05 * abs(med_n), 1e-6)
    normal_rule = max(mean + k_sigma * spread, float(n.max()) * margin)
    t = normal_rule
    method = f"normal-clipped-mean+{k_sigma:g}std"
    med_a: float | None = None
    if a.size:
        t = _cut_with_labels(normal_rule, n, a, label_min_gain)
        method = "best-f1-holdout" if t != normal_rule else f"{method}, confirmed by labelled anomalies"
        med_a = float(np.median(a))
    w_below = max((t - med_n) / LOGIT_95, spread / LOGIT_95, 1e-6)
    w_above = max((med_a - t) / LOGIT_95, 1e-6) if med_a is not None and med_a > t else w_below
    return Calibration(
        threshold=t,
        scale_below=w_below,
        scale_above=w_above,
        method=method,
        pixel_threshold=t if pixel_threshold is None else float(pixel_threshold),
        normal_median=med_n,
        anomaly_median=med_a,
    )
