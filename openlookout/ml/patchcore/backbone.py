"""The pretrained backbone behind one small interface: pixels in, the outputs of the asked stages out.

The rest of the engine names stages (1-7, with the strides in `config.STAGE_STRIDE`) and never which
network or library provides them. Weights come from pip packages: nothing is downloaded at run time.
Adding a backbone means one `BackboneSpec` in `config.BACKBONES` and, for a new library, one adapter
function here.
"""

from __future__ import annotations

import contextlib
import importlib
import io
from typing import Any

import torch
from torch import nn

from .config import BACKBONES, BackboneSpec


def _efficientnet_lite(spec: BackboneSpec) -> tuple[nn.Module, list[nn.Module]]:
    """(stem, blocks) of an efficientnet-lite-pytorch model: the only place that knows its attributes."""
    from efficientnet_lite_pytorch import EfficientNet

    weights = getattr(importlib.import_module(spec.weights_module), spec.weights_class)
    # The library prints a line on load; keep library output off our stdout.
    with contextlib.redirect_stdout(io.StringIO()):
        model: Any = EfficientNet.from_pretrained(spec.name, weights_path=weights.get_model_file_path())
    return nn.Sequential(model._conv_stem, model._bn0, model._swish), list(model._blocks)


ADAPTERS = {"efficientnet-lite-pytorch": _efficientnet_lite}


class Backbone(nn.Module):
    """A frozen ImageNet backbone truncated after the deepest asked stage.

    `forward` takes (N, 3, H, W) pixels 0-255 and returns one feature map per asked stage, in the
    order asked. Input normalisation is the weights' own convention, so callers pass plain pixels.
    """

    def __init__(self, name: str, stages: tuple[int, ...]) -> None:
        super().__init__()
        spec = BACKBONES.get(name)
        if spec is None:
            raise ValueError(f"unknown backbone {name!r}; one of {sorted(BACKBONES)}")
        self.spec = spec
        self.stages = stages
        self.ends = [spec.stage_end_block[s] for s in stages]
        stem, blocks = ADAPTERS[spec.library](spec)
        self.stem = stem
        self.blocks = nn.ModuleList(blocks[: max(self.ends) + 1])
        self.eval()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.stem((x - self.spec.input_mean) / self.spec.input_std)
        outs: dict[int, torch.Tensor] = {}
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i in self.ends:
                outs[i] = h
        return [outs[i] for i in self.ends]

    def channels(self) -> list[int]:
        """Channels of each asked stage's output, in the order asked."""
        with torch.no_grad():
            return [int(o.shape[1]) for o in self(torch.zeros(1, 3, 64, 64))]
