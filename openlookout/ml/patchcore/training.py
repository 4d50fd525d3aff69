"""Training: normal images -> memory bank -> calibrated, exportable anomaly model.

Labelled anomalies (optional) are never put in the memory bank. They train a supervised patch head that
cross-validation may weight in or out (supervised.py), choose the thresholds, and give the per-class defect
patches used to name anomalous regions.
"""

from __future__ import annotations

import copy
import math
import random
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..evaluation.thresholds import best_f1_threshold, calibrate
from ..serving.calibration import Calibration
from ..serving.images import PREPROCESS_FAST, ImageInput, image_size, model_input
from ..serving.masks import load_mask
from ..serving.model_manifest import DEFAULT_CLASS, PALETTE, AnomalyClass, ModelManifest
from .config import EngineConfig, input_shape_for
from .coreset import greedy_coreset
from .graph import AnomalyGraph, PatchFeatures, export_onnx
from .pose import PoseCheck, check_pose, pose_score_taps, rotations, skip_reason, skipped, tap_channels
from .supervised import NEGATIVES, HeadChoice, Patches, choose_head, positive_cells

Progress = Callable[[str], None]


@dataclass
class LabeledAnomaly:
    """An anomalous image; mask is 0/255 (PIL, array, path or bytes) at the image's size."""

    image: ImageInput
    mask: ImageInput | None = None
    class_name: str | None = None
    color: str | None = None


@dataclass
class TrainResult:
    graph: AnomalyGraph
    config: EngineConfig
    calibration: Calibration
    classes: list[AnomalyClass]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def model_manifest(self) -> ModelManifest:
        return ModelManifest(
            input_size=self.config.input_size,
            input_shape=self.config.shape,
            calibration=self.calibration,
            classes=self.classes,
            preprocessing=PREPROCESS_FAST,
            engine=self.config.to_dict(),
            training=self.info,
        )

    def export(self, directory: str | Path) -> tuple[Path, Path]:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        onnx_path, manifest_path = d / "model.onnx", d / "model.json"
        export_onnx(self.graph, str(onnx_path))
        self.model_manifest.write(manifest_path)
        return onnx_path, manifest_path

    def score(self, images: Sequence[ImageInput]) -> tuple[np.ndarray, np.ndarray]:
        """Torch-side scores and (H/4 x W/4) maps, the reference the ONNX graph must match."""
        return _score(self.graph, images, self.config, torch.device("cpu"))


def _device(cfg: EngineConfig) -> torch.device:
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.device)


def _pixels(src: ImageInput, cfg: EngineConfig) -> np.ndarray:
    height, width = cfg.shape
    return model_input(src, (width, height), PREPROCESS_FAST)[0]


def _with_input_shape(cfg: EngineConfig, images: Sequence[ImageInput]) -> EngineConfig:
    """The config with the graph's input shape taken from the images' median aspect ratio."""
    if cfg.input_shape is not None:
        return cfg
    aspect = float(np.median([w / h for w, h in (image_size(i) for i in images)]))
    return replace(cfg, input_shape=input_shape_for(aspect, cfg.input_size, cfg.max_aspect))


def _as_anomaly(item: Any) -> LabeledAnomaly:
    if isinstance(item, LabeledAnomaly):
        return item
    if isinstance(item, dict):
        return LabeledAnomaly(
            item["image"], item.get("mask"), item.get("class_name") or item.get("class"), item.get("color")
        )
    if isinstance(item, tuple):
        return LabeledAnomaly(*item)
    return LabeledAnomaly(item)


def _batches(n: int, size: int) -> Iterable[slice]:
    for i in range(0, n, size):
        yield slice(i, min(n, i + size))


class _RawModule(torch.nn.Module):
    def __init__(self, feat: PatchFeatures) -> None:
        super().__init__()
        self.feat = feat

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feat.raw(x)


def _backbone_runner(
    feat: PatchFeatures, shape: tuple[int, int], device: torch.device
) -> Callable[[np.ndarray], torch.Tensor]:
    """A function from a (N, 3, H, W) pixel batch to raw tap features. On a GPU a copy of the backbone
    runs there (the rest of `feat` stays on the CPU). On a CPU onnxruntime runs the same backbone several
    times faster than eager torch (depthwise convolutions), so it is exported first (~0.5 s)."""
    if device.type != "cpu":
        on_device = copy.deepcopy(_RawModule(feat)).to(device).eval()

        def run_torch(x: np.ndarray) -> torch.Tensor:
            # Full float32 convolutions (cuDNN would use TF32), as the CPU and the served graph compute.
            with torch.no_grad(), torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
                return on_device(torch.from_numpy(x).to(device)).cpu()

        return run_torch
    import io
    import warnings

    import onnxruntime as ort

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _RawModule(feat).eval(),
            (torch.zeros(1, 3, *shape),),
            buf,  # type: ignore[arg-type]
            dynamo=False,
            opset_version=17,
            input_names=["image"],
            output_names=["raw"],
            dynamic_axes={"image": {0: "n"}, "raw": {0: "n"}},
        )
    so = ort.SessionOptions()
    so.intra_op_num_threads = torch.get_num_threads()
    sess = ort.InferenceSession(buf.getvalue(), so, providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(sess.run(None, {"image": x})[0])


def _raw_features(
    feat: PatchFeatures,
    images: Sequence[ImageInput],
    cfg: EngineConfig,
    device: torch.device,
    log: Progress,
    stage: str = "Extracting features",
    run: Callable[[np.ndarray], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Decode, preprocess and run the backbone over many images, batch by batch, reporting progress."""
    if not images:
        return torch.zeros(0)
    run = run or _backbone_runner(feat, cfg.shape, device)
    out = []
    for s in _batches(len(images), cfg.batch_size):
        out.append(run(np.stack([_pixels(i, cfg) for i in images[s]])))
        log(f"{stage}: {s.stop} of {len(images)} images")
    return torch.cat(out)


@torch.no_grad()
def _score_raw(graph: AnomalyGraph, raw: torch.Tensor, bs: int = 8) -> tuple[np.ndarray, np.ndarray]:
    scores, maps = [], []
    for s in _batches(len(raw), bs):
        out = graph.score_features(raw[s])
        scores.append(out[0].numpy())
        maps.append(out[1][:, 0].numpy())
    if not scores:
        return np.zeros(0, np.float32), np.zeros((0, *graph.map_shape), np.float32)
    return np.concatenate(scores), np.concatenate(maps)


def _score(
    graph: AnomalyGraph, images: Sequence[ImageInput], cfg: EngineConfig, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    raw = _raw_features(graph.features, images, cfg, device, lambda _m: None)
    return _score_raw(graph, raw)


@torch.no_grad()
def _fit_bank(
    feat: PatchFeatures, raw: torch.Tensor, cfg: EngineConfig, device: torch.device
) -> torch.Tensor:
    """Project the normal patches and pick the coreset memory bank (the search on `device`)."""
    q = _project_all(feat, raw)
    m = min(cfg.bank_size, max(1, math.ceil(cfg.coreset_ratio * q.shape[0])))
    idx = greedy_coreset(q.to(device), m, proj_dim=cfg.coreset_projection, seed=cfg.seed)
    return q[idx.cpu()].contiguous()


def _fit_graph(
    feat: PatchFeatures, raw: torch.Tensor, cfg: EngineConfig, device: torch.device
) -> AnomalyGraph:
    """The projection and the memory bank fitted on the bank images' raw features."""
    _fit_projection(feat, raw, cfg)
    return AnomalyGraph(feat, _fit_bank(feat, raw, cfg, device), cfg).eval()


@torch.no_grad()
def _project_all(feat: PatchFeatures, raw: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) raw features -> (N * h * w, D) projected patch vectors."""
    return torch.cat([feat.project(raw[s]).reshape(-1, feat.dim) for s in _batches(len(raw), 32)])


def _fit_projection(feat: PatchFeatures, raw: torch.Tensor, cfg: EngineConfig) -> None:
    """Per-tap scale so each tap contributes equally, then optional PCA, fitted per block.

    The detail block (detail taps) and the score block (score taps) get separate PCAs, so the
    projection is block-diagonal and the graph can take distances on the score block alone.
    """
    with torch.no_grad():
        flat = raw.transpose(0, 1).flatten(1)  # (C, N*h*w)
        step = max(1, flat.shape[1] // 100_000)
        sample = flat[:, ::step]
        # Equalise the taps' mean squared norm: otherwise the widest/largest tap dominates distances.
        scale = torch.ones(flat.shape[0])
        start = 0
        chans = feat.channels
        for c in chans:
            block = sample[start : start + c]
            scale[start : start + c] = 1.0 / block.pow(2).sum(0).mean().sqrt().clamp_min(1e-6)
            start += c
        feat.tap_scale = scale * math.sqrt(len(chans)) ** -1 * 10.0
        if not (cfg.feature_dim and cfg.feature_dim < flat.shape[0] - feat.detail_in):
            return
        x = (sample * feat.tap_scale[:, None]).t()
        mean = x.mean(0)
        blocks = [(0, feat.detail_in, min(cfg.detail_dim or feat.detail_in, feat.detail_in))]
        blocks.append((feat.detail_in, feat.dim_in, cfg.feature_dim))
        proj = torch.zeros(feat.dim_in, sum(k for _, _, k in blocks))
        col = 0
        for lo, hi, k in blocks:
            if hi > lo and k:
                _, _, v = torch.linalg.svd(x[:, lo:hi] - mean[lo:hi], full_matrices=False)
                proj[lo:hi, col : col + k] = v[:k].t()
                col += k
        feat.proj_mean = mean
        feat.proj = proj.contiguous()
        feat.detail_out = blocks[0][2]


def _sanitize(name: str) -> str:
    # L4V anomaly names match [a-zA-Z0-9]*.
    s = re.sub(r"[^a-zA-Z0-9]", "", name)
    return s or DEFAULT_CLASS


def _split_holdout(n: int, cfg: EngineConfig, labelled: int = 0) -> tuple[list[int], list[int]]:
    """Normal images held out of the memory bank (to calibrate on unseen normals), and the rest.

    With enough labelled anomalies to learn from, at least supervised_min_holdout (up to a quarter of
    the images) so the cross-validation has normals to compare with.
    """
    n_hold = min(cfg.max_holdout, max(cfg.min_holdout, round(cfg.holdout_fraction * n)), n - 1)
    if cfg.supervised != "off" and labelled >= cfg.supervised_min_anomalies:
        n_hold = max(n_hold, min(cfg.supervised_min_holdout, n // 4))
    order = list(range(n))
    random.Random(cfg.seed).shuffle(order)
    return sorted(order[:n_hold]), sorted(order[n_hold:])


def _checked_config(config: EngineConfig | None, normal_images: Sequence[ImageInput]) -> EngineConfig:
    """The config for these images (input shape from their headers), validated; torch seeded."""
    if len(normal_images) < 2:
        raise ValueError("training needs at least 2 normal images")
    cfg = _with_input_shape(config or EngineConfig(), normal_images)
    cfg.validate()
    torch.manual_seed(cfg.seed)
    return cfg


def train(
    normal_images: Sequence[ImageInput],
    *,
    anomalies: Sequence[LabeledAnomaly | dict[str, Any] | tuple[Any, ...] | ImageInput] = (),
    config: EngineConfig | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Train an anomaly model from normal images (paths, bytes, PIL images or arrays) and, optionally,
    labelled anomalies (with or without masks). `progress` receives one readable line per step."""
    log: Progress = progress or (lambda _m: None)
    t0 = time.perf_counter()
    cfg = _checked_config(config, normal_images)
    device = _device(cfg)
    anoms = [_as_anomaly(a) for a in anomalies]
    # Only the backbone and the coreset search run on a GPU: the rest is small and stays on the CPU.
    feat = PatchFeatures(cfg).eval()
    backbone = _backbone_runner(feat, cfg.shape, device)  # built once for normals and anomalies
    raw = _raw_features(feat, normal_images, cfg, device, log, run=backbone)
    hold_idx, bank_idx = _split_holdout(len(raw), cfg, len(anoms))
    log("Building memory bank")
    graph = _fit_graph(feat, raw[bank_idx], cfg, device)
    pose = _check_pose(graph, [normal_images[i] for i in hold_idx], raw[hold_idx], cfg, backbone, log)
    turned = raw[:0]  # the turned normals in the bank when the pose varies
    if pose.varies:
        fitted = _fit_varying_pose(normal_images, cfg, feat, raw, backbone, (hold_idx, bank_idx), device, log)
        cfg, feat, raw, backbone, graph, turned = fitted
    stage = "Extracting features of labelled anomalies"
    anom_raw = _raw_features(feat, [a.image for a in anoms], cfg, device, log, stage, backbone)
    map_wh = (graph.map_shape[1], graph.map_shape[0])
    masks = [load_mask(a.mask, map_wh, keep_thin=True) if a.mask is not None else None for a in anoms]
    head = _learn_from_labels(graph, raw, hold_idx, bank_idx, anom_raw, masks, cfg, log)
    log("Calibrating the threshold")
    calib, normal_scores, anom_scores = _calibrate(graph, head, raw[hold_idx], anom_raw, masks, cfg)
    classes = _classes(anoms)
    if cfg.refit_on_all and hold_idx:
        _refit_on_all(graph, feat, torch.cat([raw, turned]), cfg, device, log)
    if len(classes) > 1:
        _fit_class_bank(graph, anoms, anom_raw, masks, classes, cfg)
    info = {
        "normal_images": len(raw),
        "bank_images": len(raw) if cfg.refit_on_all else len(bank_idx),
        "turned_images_in_bank": len(turned) // len(rotations(cfg.shape)),
        "holdout_images": len(hold_idx),
        "anomaly_images": len(anoms),
        "input_shape": list(cfg.shape),
        "bank_size": int(graph.bank_sq.numel()),
        "feature_dim": feat.dim,
        "device": str(device),
        "supervised": head.evidence,
        "pose": pose.evidence,
        # The scores behind the threshold (the anomalies' out of fold when the head learnt from them).
        "holdout_normal_scores": [float(v) for v in normal_scores],
        "anomaly_scores": [float(v) for v in anom_scores],
        "seconds": round(time.perf_counter() - t0, 3),
    }
    log(f"Trained in {info['seconds']:.1f} s")
    return TrainResult(graph=graph, config=cfg, calibration=calib, classes=classes, info=info)


def _check_pose(
    graph: AnomalyGraph,
    held_out: Sequence[ImageInput],
    hold_raw: torch.Tensor,
    cfg: EngineConfig,
    backbone: Callable[[np.ndarray], torch.Tensor],
    log: Progress,
) -> PoseCheck:
    """Score the held-out normals and their in-plane rotations with the model fitted so far."""
    reason = skip_reason(cfg, len(held_out))
    if reason:
        return skipped(reason)
    log("Checking whether the pose varies")
    pixels = np.stack([_pixels(i, cfg) for i in held_out])
    rotated = {name: _score_raw(graph, raw)[0] for name, raw in _turned_raw(pixels, cfg, backbone).items()}
    return check_pose(_score_raw(graph, hold_raw)[0], rotated, cfg)


def _turned_raw(
    pixels: np.ndarray, cfg: EngineConfig, backbone: Callable[[np.ndarray], torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Raw features of a pixel batch turned by each of pose.rotations, the backbone run in batches."""
    out = {}
    for name, rotate in rotations(cfg.shape).items():
        turned = rotate(pixels)
        out[name] = torch.cat([backbone(turned[s]) for s in _batches(len(turned), cfg.batch_size)])
    return out


def _refit_on_all(
    graph: AnomalyGraph,
    feat: PatchFeatures,
    raw: torch.Tensor,
    cfg: EngineConfig,
    device: torch.device,
    log: Progress,
) -> None:
    log("Building memory bank from all normal images")
    # Keep the fitted scale/projection so the calibrated threshold stays valid.
    graph.set_bank(_fit_bank(feat, raw, cfg, device))


def _fit_varying_pose(
    images: Sequence[ImageInput],
    cfg: EngineConfig,
    feat: PatchFeatures,
    raw: torch.Tensor,
    backbone: Callable[[np.ndarray], torch.Tensor],
    split: tuple[list[int], list[int]],
    device: torch.device,
    log: Progress,
) -> tuple[
    EngineConfig,
    PatchFeatures,
    torch.Tensor,
    Callable[[np.ndarray], torch.Tensor],
    AnomalyGraph,
    torch.Tensor,
]:
    """The model refitted for a varying pose: the pose taps' features, the graph fitted on the bank
    images and their turns, and the turned normals' raw features (for the refit on all normals)."""
    hold_idx, bank_idx = split
    cfg, feat, raw, backbone = _pose_features(cfg, feat, raw, backbone, log)
    turned, turned_of = _turned_normals(images, cfg, backbone, log)
    turned = turned if turned_of else raw[:0]
    held = set(hold_idx)  # held-out normals stay unseen by the bank, turned or not
    rows = [r for r, i in enumerate(turned_of) if i not in held]
    graph = _fit_graph(feat, torch.cat([raw[bank_idx], turned[rows]]), cfg, device)
    return cfg, feat, raw, backbone, graph, turned


def _pose_features(
    cfg: EngineConfig,
    feat: PatchFeatures,
    raw: torch.Tensor,
    backbone: Callable[[np.ndarray], torch.Tensor],
    log: Progress,
) -> tuple[EngineConfig, PatchFeatures, torch.Tensor, Callable[[np.ndarray], torch.Tensor]]:
    """When the pose varies: the config and features with the pose taps only (and the pose bank size),
    the normals' raw features and a backbone runner cut to those taps."""
    taps = pose_score_taps(cfg)
    bank_size = cfg.pose_bank_size if cfg.pose_turns_in_bank else cfg.bank_size
    pose_cfg = replace(cfg, taps=taps, bank_size=bank_size)
    keep = tap_channels((*cfg.detail_taps, *cfg.taps), feat.channels, (*cfg.detail_taps, *taps))
    log("The pose varies: building memory bank from the local features")
    return pose_cfg, PatchFeatures(pose_cfg).eval(), raw[:, keep], lambda x: backbone(x)[:, keep]


def _turned_normals(
    images: Sequence[ImageInput],
    cfg: EngineConfig,
    backbone: Callable[[np.ndarray], torch.Tensor],
    log: Progress,
) -> tuple[torch.Tensor, list[int]]:
    """Raw features of normal images turned by 90, 180 and 270 degrees (at most pose_turned_images
    of them, evenly spread), and for each row the index of the image it came from."""
    if not cfg.pose_turns_in_bank or not cfg.pose_turned_images:
        return torch.zeros(0), []
    chosen = sorted({round(k * len(images) / cfg.pose_turned_images) for k in range(cfg.pose_turned_images)})
    chosen = [i for i in chosen if i < len(images)]
    per_turn: dict[str, list[torch.Tensor]] = {}
    for s in _batches(len(chosen), cfg.batch_size):
        pixels = np.stack([_pixels(images[i], cfg) for i in chosen[s]])  # decoded once for every turn
        for name, raw in _turned_raw(pixels, cfg, backbone).items():
            per_turn.setdefault(name, []).append(raw)
        log(f"The pose varies: features of the turned normal images: {s.stop} of {len(chosen)}")
    return torch.cat([torch.cat(parts) for parts in per_turn.values()]), chosen * len(per_turn)


def _learn_from_labels(
    graph: AnomalyGraph,
    raw: torch.Tensor,
    hold_idx: list[int],
    bank_idx: list[int],
    anom_raw: torch.Tensor,
    masks: list[np.ndarray | None],
    cfg: EngineConfig,
    log: Progress,
) -> HeadChoice:
    """Cross-validate and fit the supervised head; a weight of 0 when it does not help or cannot be
    judged (too few labelled anomalies or held-out normals)."""
    k = len(masks)
    if (
        cfg.supervised == "off"
        or k < cfg.supervised_min_anomalies
        or len(hold_idx) < cfg.supervised_min_holdout
    ):
        reason = (
            "off" if cfg.supervised == "off" else f"{k} labelled anomalies, {len(hold_idx)} held-out normals"
        )
        return HeadChoice(0.0, evidence={"labelled_anomalies": k, "weight": 0.0, "skipped": reason})
    log(f"Learning from {k} labelled anomalies")
    negatives = _sample_patches(graph.features, raw[bank_idx], NEGATIVES, cfg.seed)
    head = choose_head(
        graph, Patches.of(graph, raw[hold_idx]), Patches.of(graph, anom_raw), masks, negatives, cfg
    )
    if head.weight > 0 and head.w is not None:
        graph.set_head(head.w, head.b, head.weight, head.units)
    cv = head.evidence["cv_auroc"]
    log(f"Labelled anomalies: head weight {head.weight:g} (cross-validated AUROC by weight: {cv})")
    return head


@torch.no_grad()
def _sample_patches(feat: PatchFeatures, raw: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """(count, D) projected patch vectors drawn at random from (N, C, h, w) raw features."""
    n, c, h, w = raw.shape
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randperm(n * h * w, generator=gen)[:count]
    cells = raw.permute(1, 0, 2, 3).reshape(c, -1)[:, pick]  # (C, count)
    return feat.project(cells.t().reshape(1, -1, c).permute(0, 2, 1)[..., None])[0]


def _calibrate(
    graph: AnomalyGraph,
    head: HeadChoice,
    hold_raw: torch.Tensor,
    anom_raw: torch.Tensor,
    masks: list[np.ndarray | None],
    cfg: EngineConfig,
) -> tuple[Calibration, np.ndarray, np.ndarray]:
    """Image and pixel thresholds from scores the model did not learn from: held-out normals, and the
    labelled anomalies' out-of-fold scores when the head was fitted on them."""
    if head.weight > 0:
        normal_scores, normal_maps = head.normal_scores, head.normal_maps
        anom_scores, anom_maps = head.anomaly_scores, head.anomaly_maps
    else:
        normal_scores, normal_maps = _score_raw(graph, hold_raw)
        anom_scores, anom_maps = _score_raw(graph, anom_raw)
    labelled = len(masks) > 0
    rule = {
        "k_sigma": cfg.normal_k_sigma,
        "clip_sigma": cfg.normal_clip_sigma,
        "margin": cfg.normal_margin,
        "label_min_gain": cfg.label_min_gain,
    }
    calib = calibrate(normal_scores, anom_scores if labelled else None, **rule)
    # The same rule on the anomaly map's own image score (it differs from the score when detail taps
    # feed the map) gives the map-unit equivalent of the image threshold. With labels it is the labels'
    # best cut: that caps the pixel threshold, and the normal rule's lower cut would widen every mask.
    map_threshold = calibrate(
        graph.image_score(torch.from_numpy(normal_maps)).numpy(),
        graph.image_score(torch.from_numpy(anom_maps)).numpy() if labelled else None,
        **{**rule, "label_min_gain": 0.0},
    ).threshold
    pixel_thr = _pixel_threshold(normal_maps, anom_maps, masks)
    # A region is only painted if the image is anomalous, so a higher pixel cut-off adds nothing.
    calib.pixel_threshold = min(map_threshold if pixel_thr is None else pixel_thr, map_threshold)
    return calib, normal_scores, anom_scores


def _pixel_threshold(
    normal_maps: np.ndarray, anom_maps: np.ndarray, masks: list[np.ndarray | None]
) -> float | None:
    """Best pixel-level F1 threshold when some anomalies have masks, else None (= image threshold)."""
    vals, labels = [], []
    for m, mask in zip(anom_maps, masks, strict=True):
        if mask is not None:
            vals.append(m.ravel())
            labels.append(mask.ravel())
    if not vals:
        return None
    for m in normal_maps:
        vals.append(m.ravel())
        labels.append(np.zeros(m.size, bool))
    t, _ = best_f1_threshold(np.concatenate(vals), np.concatenate(labels))
    return t


def _classes(anoms: list[LabeledAnomaly]) -> list[AnomalyClass]:
    names: dict[str, str | None] = {}
    for a in anoms:
        nm = _sanitize(a.class_name) if a.class_name else DEFAULT_CLASS
        if nm not in names or names[nm] is None:
            names[nm] = a.color.upper() if a.color else None
    if not names:
        names[DEFAULT_CLASS] = None
    used = {c for c in names.values() if c}
    free = [c for c in PALETTE if c not in used]
    out = []
    for i, (nm, col) in enumerate(sorted(names.items())):
        if col is None:
            col = free.pop(0) if free else f"#{(37 * (i + 1)) % 256:02X}{(91 * (i + 1)) % 256:02X}80"
        out.append(AnomalyClass(i + 1, nm, col))
    return out


def _fit_class_bank(
    graph: AnomalyGraph,
    anoms: list[LabeledAnomaly],
    anom_raw: torch.Tensor,
    masks: list[np.ndarray | None],
    classes: list[AnomalyClass],
    cfg: EngineConfig,
) -> None:
    """Keep defect patches of each class (the cells that positive_cells says show the defect)."""
    by_name = {c.name: c.id for c in classes}
    gen = torch.Generator().manual_seed(cfg.seed)
    patches = Patches.of(graph, anom_raw)
    per_class: dict[int, list[torch.Tensor]] = {}
    for i, (a, mask) in enumerate(zip(anoms, masks, strict=True)):
        sel = positive_cells(mask, patches.d_map[i], graph.features_grid)
        cid = by_name[_sanitize(a.class_name) if a.class_name else DEFAULT_CLASS]
        per_class.setdefault(cid, []).append(patches.q[i][sel])
    feats, ids = [], []
    for cid, chunks in sorted(per_class.items()):
        f = torch.cat(chunks)
        if f.shape[0] > cfg.class_bank_per_class:
            f = f[torch.randperm(f.shape[0], generator=gen)[: cfg.class_bank_per_class]]
        feats.append(f)
        ids.append(torch.full((f.shape[0],), cid, dtype=torch.int64))
    graph.set_class_bank(torch.cat(feats), torch.cat(ids))
