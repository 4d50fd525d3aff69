"""Does the product's pose vary? Decided on held-out normal images, before the model is final.

Held-out normals (which the memory bank has not seen) are rotated in the image plane and scored by the
model fitted so far. When the part lies at any angle, a rotated normal is just another normal pose and
scores like the held-out normals themselves; when the pose is fixed (a bottle under fixed lighting, a
transistor whose leads point one way, a texture with a grain) a rotated normal looks anomalous. The turns
keep the input's shape: the central square turns by 90, 180 and 270 degrees (docs/engine.md #90-92).

When the pose varies, the score block drops the taps whose receptive field spans the whole part (stride
32): their features follow the part's angle, which a memory bank cannot cover at every angle, while the
stride-8 and stride-16 taps describe local shape and texture. The normals, turned, then join a larger
memory bank (training.py), so every angle has normal patches to match.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..evaluation.metrics import auroc
from .config import EngineConfig

Rotation = Callable[[np.ndarray], np.ndarray]


def rotations(shape: tuple[int, int]) -> dict[str, Rotation]:
    """In-plane turns of an (N, C, H, W) pixel batch by 90, 180 and 270 degrees that keep its (H, W):
    the central square (the whole input when it is square) turns, the ends of a longer side stay.

    A turn of 180 degrees alone is a weak test: many fixed textures look the same upside down (a
    magnetic tile's grain), while a quarter turn shows which way they run."""
    side = min(shape)
    top, left = (shape[0] - side) // 2, (shape[1] - side) // 2

    def turn(k: int) -> Rotation:
        def rotate(x: np.ndarray) -> np.ndarray:
            out = np.array(x, copy=True)
            square = (..., slice(top, top + side), slice(left, left + side))
            out[square] = np.rot90(x[square], k, axes=(-2, -1))
            return out

        return rotate

    return {"rot90": turn(1), "rot180": turn(2), "rot270": turn(3)}


@dataclass
class PoseCheck:
    """The decision and its evidence (for the manifest)."""

    varies: bool
    evidence: dict[str, Any] = field(default_factory=dict)


def pose_score_taps(cfg: EngineConfig) -> tuple[int, ...]:
    """The score taps a varying pose keeps: those of cfg.taps that cfg.pose_taps names."""
    return tuple(t for t in cfg.taps if t in cfg.pose_taps)


def skip_reason(cfg: EngineConfig, held_out: int) -> str | None:
    """Why the pose is not checked (None: it is)."""
    if cfg.pose_check == "off":
        return "off"
    if pose_score_taps(cfg) == cfg.taps:
        return f"no tap to drop: taps {list(cfg.taps)}, pose taps {list(cfg.pose_taps)}"
    if held_out < cfg.pose_min_holdout:
        return f"{held_out} held-out normals (at least {cfg.pose_min_holdout} needed)"
    return None


def skipped(reason: str) -> PoseCheck:
    return PoseCheck(False, {"varies": False, "skipped": reason})


def check_pose(
    normal_scores: np.ndarray, rotated_scores: dict[str, np.ndarray], cfg: EngineConfig
) -> PoseCheck:
    """Pose varies when rotated held-out normals cannot be told from the held-out normals themselves:
    the AUROC of their scores against the normals' scores, averaged over the rotations, is at most
    `pose_max_auroc` (0.5 = indistinguishable, 1 = every rotated image scores above every normal)."""
    n = len(normal_scores)
    labels = np.r_[np.zeros(n), np.ones(n)]
    by_rotation = {
        name: round(float(auroc(np.r_[normal_scores, scores], labels)), 4)
        for name, scores in rotated_scores.items()
    }
    mean = float(np.mean(list(by_rotation.values())))
    varies = mean <= cfg.pose_max_auroc
    evidence = {
        "varies": varies,
        "held_out_normals": n,
        "rotated_auroc": by_rotation,
        "mean_rotated_auroc": round(mean, 4),
        "max_auroc": cfg.pose_max_auroc,
    }
    if varies:
        evidence["taps"] = list(pose_score_taps(cfg))
    return PoseCheck(varies, evidence)


def tap_channels(stages: tuple[int, ...], channels: list[int], keep: tuple[int, ...]) -> list[int]:
    """Indices of the raw feature channels that belong to the `keep` stages (raw features concatenate
    the stages' channels in the order of `stages`)."""
    out: list[int] = []
    start = 0
    for stage, width in zip(stages, channels, strict=True):
        if stage in keep:
            out.extend(range(start, start + width))
        start += width
    return out
