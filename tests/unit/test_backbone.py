"""The backbone adapter: every registered backbone gives each stage at its documented stride."""

import pytest
import torch

from openlookout.ml.patchcore.backbone import Backbone
from openlookout.ml.patchcore.config import BACKBONES, STAGE_STRIDE


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_stage_comes_at_its_stride(name: str) -> None:
    stages = tuple(sorted(BACKBONES[name].stage_end_block))
    backbone = Backbone(name, stages)
    with torch.no_grad():
        outs = backbone(torch.full((1, 3, 64, 96), 127.0))
    assert [tuple(o.shape[-2:]) for o in outs] == [
        (64 // STAGE_STRIDE[s], 96 // STAGE_STRIDE[s]) for s in stages
    ]
    assert backbone.channels() == [int(o.shape[1]) for o in outs]


def test_stages_come_in_the_order_asked_and_the_network_stops_at_the_deepest() -> None:
    backbone = Backbone("efficientnet-lite0", (5, 2))
    with torch.no_grad():
        deep, shallow = backbone(torch.zeros(1, 3, 64, 64))
    assert deep.shape[-1] == 64 // STAGE_STRIDE[5] and shallow.shape[-1] == 64 // STAGE_STRIDE[2]
    assert len(backbone.blocks) == BACKBONES["efficientnet-lite0"].stage_end_block[5] + 1


def test_an_unknown_backbone_is_named_in_the_error() -> None:
    with pytest.raises(ValueError, match="resnet18"):
        Backbone("resnet18", (3,))
