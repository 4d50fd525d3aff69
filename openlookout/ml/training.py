"""Training: normal images -> memory bank -> calibrated, exportable anomaly model.

Labeled anomalies (optional) are never put in the memory bank: they only choose the threshold, the
segmentation threshold and the per-class defect patches used to name anomalous regions.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .calibration import Calibration, best_f1_threshold, calibrate
from .config import EngineConfig
from .coreset import greedy_coreset
from .graph import AnomalyGraph, PatchFeatures, export_onnx
from .images import PREPROCESS_FAST, ImageInput, load_mask, model_input
from .manifest import DEFAULT_CLASS, PALETTE, AnomalyClass, Manifest

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
    def manifest(self) -> Manifest:
        return Manifest(
            input_size=self.config.input_size,
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
        self.manifest.write(manifest_path)
        return onnx_path, manifest_path

    def score(self, images: Sequence[ImageInput], batch_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
        """Torch-side scores and (S x S) maps, the reference the ONNX graph must match."""
        return _score(self.graph, [_pixels(i, self.config) for i in images], torch.device("cpu"), batch_size)


def _device(cfg: EngineConfig) -> torch.device:
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.device)


def _pixels(src: ImageInput, cfg: EngineConfig) -> np.ndarray:
    return model_input(src, cfg.input_size, PREPROCESS_FAST)[0]


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


def _raw_features(feat: PatchFeatures, pix: list[np.ndarray], device: torch.device, bs: int) -> torch.Tensor:
    """Backbone features of many images. On a CPU onnxruntime runs the same backbone several times
    faster than eager torch (depthwise convolutions), so the CPU path exports it first (~0.5 s)."""
    out = []
    if device.type == "cpu":
        import io
        import warnings

        import onnxruntime as ort

        buf = io.BytesIO()
        size = pix[0].shape[-1]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _RawModule(feat).eval(),
                (torch.zeros(1, 3, size, size),),
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
        for s in _batches(len(pix), bs):
            out.append(torch.from_numpy(sess.run(None, {"image": np.stack(pix[s])})[0]))
        return torch.cat(out)
    with torch.no_grad():
        for s in _batches(len(pix), bs):
            x = torch.from_numpy(np.stack(pix[s])).to(device)
            out.append(feat.raw(x).cpu())
    return torch.cat(out)


@torch.no_grad()
def _score_raw(
    graph: AnomalyGraph, raw: torch.Tensor, device: torch.device, bs: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    scores, maps = [], []
    for s in _batches(len(raw), bs):
        out = graph.head(raw[s].to(device))
        scores.append(out[0].cpu().numpy())
        maps.append(out[1][:, 0].cpu().numpy())
    if not scores:
        return np.zeros(0, np.float32), np.zeros((0, graph.map_size, graph.map_size), np.float32)
    return np.concatenate(scores), np.concatenate(maps)


def _score(
    graph: AnomalyGraph, pix: list[np.ndarray], device: torch.device, bs: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    if not pix:
        return _score_raw(graph, torch.zeros(0), device, bs)
    return _score_raw(graph, _raw_features(graph.features, pix, device, bs), device, bs)


@torch.no_grad()
def _fit_bank(
    feat: PatchFeatures, raw: torch.Tensor, cfg: EngineConfig, device: torch.device, log: Progress
) -> torch.Tensor:
    """Project the normal patches and pick the coreset memory bank."""
    q = torch.cat([feat.project(raw[s].to(device)).reshape(-1, feat.dim) for s in _batches(len(raw), 32)])
    m = min(cfg.bank_size, max(1, math.ceil(cfg.coreset_ratio * q.shape[0])))
    t = time.perf_counter()
    idx = greedy_coreset(q, m, proj_dim=cfg.coreset_projection, seed=cfg.seed)
    log(f"coreset: {m} of {q.shape[0]} patches in {time.perf_counter() - t:.1f} s")
    return q[idx].contiguous()


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
    # L4V anomaly names match [a-zA-Z0-9]* (l4v-behaviour.md 5.4).
    s = re.sub(r"[^a-zA-Z0-9]", "", name)
    return s or DEFAULT_CLASS


def train(
    normal_images: Sequence[ImageInput],
    *,
    anomalies: Sequence[LabeledAnomaly | dict[str, Any] | tuple[Any, ...] | ImageInput] = (),
    config: EngineConfig | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Train an anomaly model from normal images (paths, bytes, PIL images or arrays)."""
    cfg = config or EngineConfig()
    cfg.validate()
    log: Progress = progress or (lambda _m: None)
    t0 = time.perf_counter()
    if len(normal_images) < 2:
        raise ValueError("training needs at least 2 normal images")
    torch.manual_seed(cfg.seed)
    device = _device(cfg)
    anoms = [_as_anomaly(a) for a in anomalies]

    pix = [_pixels(i, cfg) for i in normal_images]
    t_load = time.perf_counter() - t0
    log(f"decoded {len(pix)} normal images in {t_load:.1f} s")

    # Hold out some normal images from the memory bank to calibrate on unseen normals.
    n = len(pix)
    n_hold = min(cfg.max_holdout, max(cfg.min_holdout, round(cfg.holdout_fraction * n)), n - 1)
    order = list(range(n))
    random.Random(cfg.seed).shuffle(order)
    hold_idx, bank_idx = sorted(order[:n_hold]), sorted(order[n_hold:])

    feat = PatchFeatures(cfg).to(device).eval()
    t = time.perf_counter()
    raw = _raw_features(feat, pix, device, cfg.batch_size)
    t_feat = time.perf_counter() - t
    log(f"features {tuple(raw.shape)} in {t_feat:.1f} s on {device}")
    _fit_projection(feat, raw[bank_idx], cfg)
    bank = _fit_bank(feat, raw[bank_idx], cfg, device, log)
    graph = AnomalyGraph(feat, bank, cfg).to(device).eval()

    # Calibration scores on images the bank has not seen.
    normal_scores, normal_maps = _score_raw(graph, raw[hold_idx], device)
    anom_pix = [_pixels(a.image, cfg) for a in anoms]
    anom_raw = _raw_features(feat, anom_pix, device, cfg.batch_size) if anoms else torch.zeros(0)
    anom_scores, anom_maps = _score_raw(graph, anom_raw, device)
    map_wh = (graph.map_size, graph.map_size)
    masks = [load_mask(a.mask, map_wh) if a.mask is not None else None for a in anoms]
    calib = calibrate(
        normal_scores,
        anom_scores if len(anoms) else None,
        k_sigma=cfg.normal_k_sigma,
        margin=cfg.normal_margin,
    )
    # The same rule on the anomaly map's own image score (it differs from the score when detail taps
    # feed the map) gives the map-unit equivalent of the image threshold.
    map_threshold = calibrate(
        graph.image_score(torch.from_numpy(normal_maps)).numpy(),
        graph.image_score(torch.from_numpy(anom_maps)).numpy() if len(anoms) else None,
        k_sigma=cfg.normal_k_sigma,
        margin=cfg.normal_margin,
    ).threshold
    pixel_thr = _pixel_threshold(normal_maps, anom_maps, masks)
    # A region is only painted if the image is anomalous, so a higher pixel cut-off adds nothing.
    calib.pixel_threshold = min(map_threshold if pixel_thr is None else pixel_thr, map_threshold)
    log(
        f"calibration ({calib.method}): threshold {calib.threshold:.4f}, pixel threshold "
        f"{calib.pixel_threshold:.4f}, held-out normals {len(normal_scores)}, anomalies {len(anoms)}"
    )

    classes = _classes(anoms)
    if len(classes) > 1:
        _fit_class_bank(graph, feat, anoms, anom_raw, anom_maps, masks, classes, calib, cfg, device)

    if cfg.refit_on_all and n_hold:
        # Keep the fitted scale/projection so the calibrated threshold stays valid.
        graph.set_bank(_fit_bank(feat, raw, cfg, device, log).to(device))
        if len(classes) > 1:
            _fit_class_bank(graph, feat, anoms, anom_raw, anom_maps, masks, classes, calib, cfg, device)

    graph = graph.cpu().eval()
    info = {
        "normal_images": n,
        "bank_images": n if cfg.refit_on_all else len(bank_idx),
        "holdout_images": n_hold,
        "anomaly_images": len(anoms),
        "bank_size": int(graph.bank_sq.numel()),
        "feature_dim": feat.dim,
        "device": str(device),
        "holdout_normal_scores": [float(s) for s in normal_scores],
        "anomaly_scores": [float(s) for s in anom_scores],
        "seconds": round(time.perf_counter() - t0, 3),
    }
    log(f"trained in {info['seconds']:.1f} s")
    return TrainResult(graph=graph, config=cfg, calibration=calib, classes=classes, info=info)


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


@torch.no_grad()
def _fit_class_bank(
    graph: AnomalyGraph,
    feat: PatchFeatures,
    anoms: list[LabeledAnomaly],
    anom_raw: torch.Tensor,
    anom_maps: np.ndarray,
    masks: list[np.ndarray | None],
    classes: list[AnomalyClass],
    calib: Calibration,
    cfg: EngineConfig,
    device: torch.device,
) -> None:
    """Keep defect patches of each class: inside the mask if given, else the most anomalous cells."""
    by_name = {c.name: c.id for c in classes}
    gen = torch.Generator().manual_seed(cfg.seed)
    per_class: dict[int, list[torch.Tensor]] = {}
    for a, raw, amap, mask in zip(anoms, anom_raw, anom_maps, masks, strict=True):
        raw = raw[None].to(device)
        h, w = raw.shape[-2:]
        q = feat.project(raw)[0].cpu()  # (h*w, D)
        if mask is not None and mask.any():
            cov = F.adaptive_avg_pool2d(
                torch.from_numpy(mask.astype(np.float32))[None, None], (h, w)
            ).flatten()
            sel = cov >= 0.5 * cov.max()
        else:
            cell = F.adaptive_max_pool2d(torch.from_numpy(amap)[None, None], (h, w)).flatten()
            sel = cell >= max(calib.pixel_threshold, float(torch.quantile(cell, 0.95)))
        cid = by_name[_sanitize(a.class_name) if a.class_name else DEFAULT_CLASS]
        per_class.setdefault(cid, []).append(q[sel])
    feats, ids = [], []
    for cid, chunks in sorted(per_class.items()):
        f = torch.cat(chunks)
        if f.shape[0] > cfg.class_bank_per_class:
            f = f[torch.randperm(f.shape[0], generator=gen)[: cfg.class_bank_per_class]]
        feats.append(f)
        ids.append(torch.full((f.shape[0],), cid, dtype=torch.int64))
    graph.set_class_bank(torch.cat(feats).to(device), torch.cat(ids).to(device))
