"""The torch model that is exported as one ONNX graph: pixels in, image score and anomaly map out.

Pipeline: (x - 127) / 128 -> EfficientNet-Lite truncated after the last tap -> per-tap local average
pooling -> resampled to the first score tap's grid (detail taps averaged down, deeper taps upsampled)
-> per-tap scale -> concat -> optional block PCA (detail block, score block) -> nearest memory-bank
patch (||q||^2 - 2 q.b + ||b||^2, min over the bank) -> sqrt -> bilinear upsample to a quarter of the
input size -> Gaussian blur. The score block's map gives the image score (mean of its top pixels); the
whole vector's map is the anomaly map.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import Backbone
from .config import STAGE_STRIDE, EngineConfig


class PatchFeatures(nn.Module):
    """Locally aware multi-scale patch features on the first score tap's grid, shape (N, D, h, w).

    Channels are ordered detail taps first, then score taps; after projection the first
    `detail_out` dims of a patch vector are the detail block, the rest the score block.
    """

    tap_scale: torch.Tensor
    proj_mean: torch.Tensor
    proj: torch.Tensor

    def __init__(self, cfg: EngineConfig) -> None:
        super().__init__()
        self.n_detail = len(cfg.detail_taps)
        self.backbone = Backbone(cfg.backbone, (*cfg.detail_taps, *cfg.taps))
        self.aggregate = cfg.aggregate
        self.zero_pad = cfg.aggregate_zero_pad
        self.l2_normalize = cfg.l2_normalize
        self.standardize = cfg.input_standardize
        self.channels = self.backbone.channels()
        self.detail_in = sum(self.channels[: self.n_detail])
        self.dim_in = sum(self.channels)
        # Leading dims of a projected patch vector that belong to the detail block (set by the fit).
        self.detail_out = self.detail_in
        self.register_buffer("tap_scale", torch.ones(self.dim_in))
        # PCA projection (identity until fitted).
        self.register_buffer("proj_mean", torch.zeros(self.dim_in))
        self.register_buffer("proj", torch.zeros(0))

    @property
    def dim(self) -> int:
        return int(self.proj.shape[1]) if self.proj.numel() else self.dim_in

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.standardize:
            # Per-image brightness/contrast normalisation (global intensity changes are then ignored).
            mu = x.mean(dim=(1, 2, 3), keepdim=True)
            sd = x.std(dim=(1, 2, 3), keepdim=True).clamp_min(1.0)
            x = (x - mu) / sd * 48.0 + 127.0
        return self.backbone(x)

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """Aggregated, concatenated tap features before scaling/projection."""
        taps = self._taps(x)
        size = taps[self.n_detail].shape[-2:]
        feats = []
        for t in taps:
            if self.aggregate > 1:
                t = F.avg_pool2d(t, self.aggregate, 1, self.aggregate // 2, count_include_pad=self.zero_pad)
            if t.shape[-2] > size[0]:
                # Finer detail taps are averaged onto the grid, keeping what every pixel saw.
                # (the input size is a multiple of 32, so the ratio is a whole number)
                k = (int(t.shape[-2]) // int(size[0]), int(t.shape[-1]) // int(size[1]))
                t = F.avg_pool2d(t, k)
            elif t.shape[-2:] != size:
                t = F.interpolate(t, size=size, mode="bilinear", align_corners=False)
            feats.append(t)
        return torch.cat(feats, 1)

    def project(self, f: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) raw features -> (N, h*w, D) patch vectors."""
        f = f * self.tap_scale[None, :, None, None]
        q = f.flatten(2).transpose(1, 2)
        if self.l2_normalize:
            q = q / torch.sqrt((q * q).sum(-1, keepdim=True) + 1e-6) * 10.0
        if self.proj.numel():
            q = (q - self.proj_mean) @ self.proj
        return q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.raw(x))


def gaussian_kernel(sigma: float) -> torch.Tensor:
    r = max(1, math.ceil(3 * sigma))
    xs = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-(xs**2) / (2 * sigma * sigma))
    return k / k.sum()


class AnomalyGraph(nn.Module):
    """Scoring graph: pixels (N, 3, H, W) 0-255 -> score (N,), map (N, 1, H/4, W/4)[, class (N, h, w)].

    The image score is the mean of the top pixels of the score-block map; the anomaly map output uses
    the whole patch vector (detail block included) and so is finer. With a supervised head (labelled
    anomalies in training), each patch's distances are put in units of a normal image's score and the
    head's defect probability, times its weight, is added to both.
    """

    bank_t: torch.Tensor
    bank_sq: torch.Tensor
    detail_bank: torch.Tensor
    blur: torch.Tensor
    class_bank_t: torch.Tensor
    class_ids: torch.Tensor
    head_w: torch.Tensor
    head_b: torch.Tensor
    head_weight: torch.Tensor
    units: torch.Tensor

    def __init__(self, features: PatchFeatures, bank: torch.Tensor, cfg: EngineConfig) -> None:
        super().__init__()
        self.features = features
        self.shape = cfg.shape
        # The map is computed at a quarter of the input size (4x finer than the stride-8 grid); serving
        # resizes it to the image's size. Smoothing and top-k at full input size cost more than they gave.
        self.map_shape = (self.shape[0] // 4, self.shape[1] // 4)
        stride = STAGE_STRIDE[min(cfg.taps)]
        # The patch grid: the first score tap's resolution.
        self.features_grid = (self.shape[0] // stride, self.shape[1] // stride)
        # Image score = mean of the top fraction of map pixels (1 = just the maximum).
        self.top_k = max(1, round(cfg.score_top_fraction * self.map_shape[0] * self.map_shape[1]))
        self.register_buffer("bank_t", torch.zeros(0))
        self.register_buffer("bank_sq", torch.zeros(0))
        self.register_buffer("detail_bank", torch.zeros(0))
        self.set_bank(bank)
        sigma = cfg.smoothing_sigma / 4
        self.register_buffer("blur", gaussian_kernel(sigma) if sigma > 0 else torch.ones(1))
        self.register_buffer("class_bank_t", torch.zeros(0))
        self.register_buffer("class_ids", torch.zeros(0, dtype=torch.int64))
        self.register_buffer("head_w", torch.zeros(0))
        self.register_buffer("head_b", torch.zeros(1))
        self.register_buffer("head_weight", torch.zeros(1))
        self.register_buffer("units", torch.ones(2))

    @property
    def split(self) -> int:
        """Leading dims of a patch vector that only the anomaly map uses (0 without detail taps)."""
        return self.features.detail_out

    def set_bank(self, bank: torch.Tensor) -> None:
        """Store the bank as Gemm operands, split into the detail and score blocks."""
        detail, score = bank[:, : self.split], bank[:, self.split :]
        self.bank_t = -2.0 * score.t().contiguous()
        self.bank_sq = (score * score).sum(1)
        self.detail_bank = detail.contiguous()

    def set_class_bank(self, feats: torch.Tensor, ids: torch.Tensor) -> None:
        self.class_bank_t = feats.t().contiguous()
        self.class_ids = ids.to(torch.int64)

    @property
    def has_classes(self) -> bool:
        return self.class_ids.numel() > 0

    def set_head(self, w: torch.Tensor, b: float, weight: float, units: tuple[float, float]) -> None:
        """Add a supervised patch head: logistic weights on the projected patch vector, its weight in
        units of a normal image's score, and those units (score map, anomaly map)."""
        self.head_w = w.reshape(-1).contiguous()
        self.head_b = torch.tensor([b], dtype=torch.float32, device=w.device)
        self.head_weight = torch.tensor([weight], dtype=torch.float32, device=w.device)
        self.units = torch.tensor(units, dtype=torch.float32, device=w.device)

    @property
    def has_head(self) -> bool:
        return self.head_w.numel() > 0

    def defect_probability(self, q: torch.Tensor) -> torch.Tensor:
        """(N, P, D) projected patches -> (N, P) supervised head's defect probability."""
        return torch.sigmoid(q @ self.head_w + self.head_b)

    def patch_distance(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, P, D) -> Euclidean distances (N, P) for the image score and for the anomaly map.

        Without detail taps both are the distance to the nearest bank patch. With them, the nearest
        patch is found on the score block alone, and the map distance adds the detail block's distance
        to that same patch: does the fine texture match the normal patch that matched the context?
        (As accurate for masks as a search on all dims, measured, at the cost of one small gather.)
        """
        n, p, _ = q.shape
        qs = q[..., self.split :].reshape(n * p, -1)
        # One Gemm with the bias fused (bank_t holds -2 b^T): ||b||^2 - 2 q.b, then a min over the bank.
        cross = torch.addmm(self.bank_sq[None, :], qs, self.bank_t)
        qs_sq = (qs * qs).sum(-1)
        if not self.split:
            d = torch.sqrt(torch.clamp(qs_sq + torch.amin(cross, dim=-1), min=0.0)).view(n, p)
            return d, d
        nearest = torch.argmin(cross, dim=-1)
        d2 = torch.clamp(qs_sq + torch.gather(cross, 1, nearest[:, None])[:, 0], min=0.0)
        diff = q[..., : self.split].reshape(n * p, -1) - self.detail_bank[nearest]
        return torch.sqrt(d2).view(n, p), torch.sqrt(d2 + (diff * diff).sum(-1)).view(n, p)

    def smooth(self, patch_map: torch.Tensor) -> torch.Tensor:
        m = F.interpolate(patch_map, size=self.map_shape, mode="bilinear", align_corners=False)
        k = self.blur
        if k.numel() > 1:
            r = (k.numel() - 1) // 2
            m = F.pad(m, (r, r, r, r), mode="replicate")
            m = F.conv2d(m, k.view(1, 1, 1, -1))
            m = F.conv2d(m, k.view(1, 1, -1, 1))
        return m

    def image_score(self, maps: torch.Tensor) -> torch.Tensor:
        """(N, ...) maps -> (N,) mean of each map's top_k pixels (the maximum when top_k is 1)."""
        flat = maps.flatten(1)
        if self.top_k == 1:
            return torch.amax(flat, dim=1)
        return torch.topk(flat, self.top_k, dim=1).values.mean(1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.score_features(self.features.raw(x))

    def score_features(self, raw: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Everything after the backbone: (N, C, h, w) raw tap features -> outputs."""
        n, _, h, w = raw.shape
        q = self.features.project(raw)
        score_d, map_d = self.patch_distance(q)
        if self.has_head:
            defect = self.head_weight * self.defect_probability(q)
            score_d, map_d = score_d / self.units[0] + defect, map_d / self.units[1] + defect
        score_map = self.smooth(score_d.view(n, 1, h, w))
        amap = self.smooth(map_d.view(n, 1, h, w)) if self.split else score_map
        score = self.image_score(score_map)
        if not self.has_classes:
            return score, amap
        nearest = torch.argmin(
            (self.class_bank_t * self.class_bank_t).sum(0) - 2.0 * (q @ self.class_bank_t), dim=-1
        )
        return score, amap, self.class_ids[nearest].view(n, h, w)


def export_onnx(graph: AnomalyGraph, path: str) -> None:
    """TorchScript-based exporter (dynamo=False): one self-contained file, exported in about a second."""
    graph = graph.eval().cpu()
    x = torch.zeros(1, 3, *graph.shape)
    outputs = ["score", "anomaly_map"] + (["class_map"] if graph.has_classes else [])
    dyn = {"image": {0: "n"}, **{o: {0: "n"} for o in outputs}}
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            (x,),
            path,
            dynamo=False,
            opset_version=17,
            input_names=["image"],
            output_names=outputs,
            dynamic_axes=dyn,
            do_constant_folding=True,
        )
