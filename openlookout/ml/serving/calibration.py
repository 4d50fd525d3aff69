"""The calibration curve: a raw score to L4V's verdict and confidence (numpy only).

The raw score s of an image comes from its smoothed anomaly map (nearest-neighbour feature distances):
its maximum, or the mean of its top pixels (the engine config's `score_top_fraction`). It is mapped
to an anomaly probability p with a piecewise logistic curve centred on the threshold t:

    p = 1 / (1 + exp(-(s - t) / w)),  w = w_below if s < t else w_above

p is continuous and strictly increasing in s, p(t) = 0.5, so IsAnomalous = (s >= t) = (p >= 0.5) and
L4V's Confidence (confidence in the verdict) is p when anomalous and 1 - p otherwise. Hence
`Confidence if IsAnomalous else 1 - Confidence` = p, monotone in the raw score.

Training chooses t, w_below and w_above (ml/evaluation/thresholds.py).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

LOGIT_95 = math.log(19.0)  # logit(0.95)


@dataclass
class Calibration:
    threshold: float
    scale_below: float
    scale_above: float
    method: str
    pixel_threshold: float
    normal_median: float = 0.0
    anomaly_median: float | None = None

    def probability(self, score: float | np.ndarray) -> np.ndarray:
        s = np.asarray(score, dtype=np.float64)
        w = np.where(s < self.threshold, self.scale_below, self.scale_above)
        z = np.clip((s - self.threshold) / w, -60.0, 60.0)
        return 1.0 / (1.0 + np.exp(-z))

    def decide(self, score: float) -> tuple[bool, float, float]:
        """(is_anomalous, confidence, anomaly probability) for one raw score."""
        p = float(self.probability(score))
        anomalous = score >= self.threshold
        return anomalous, (p if anomalous else 1.0 - p), p

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["type"] = "piecewise-logistic"
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        return cls(
            threshold=float(d["threshold"]),
            scale_below=float(d["scale_below"]),
            scale_above=float(d["scale_above"]),
            method=str(d.get("method", "")),
            pixel_threshold=float(d.get("pixel_threshold", d["threshold"])),
            normal_median=float(d.get("normal_median", 0.0)),
            anomaly_median=None if d.get("anomaly_median") is None else float(d["anomaly_median"]),
        )
