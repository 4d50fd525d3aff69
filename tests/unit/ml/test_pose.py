"""The pose check: rotated held-out normals decide whether the stride-32 tap stays in the score."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from openlookout.ml.patchcore.config import EngineConfig
from openlookout.ml.patchcore.pose import check_pose, rotations, skip_reason, tap_channels
from openlookout.ml.serving.inference import Detector

from .conftest import SIZE, png_bytes, with_defect


def blobs(seed: int) -> Image.Image:
    """A texture that looks the same at every angle: smoothed noise, grayscale."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 1, (SIZE // 4, SIZE // 4))
    small = Image.fromarray(np.clip(128 + 40 * noise, 0, 255).astype(np.uint8), "L")
    img = np.asarray(small.resize((SIZE, SIZE), Image.Resampling.BICUBIC), np.float32)
    return Image.fromarray(np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8), "L")


def test_rotations_turn_the_central_square_and_keep_the_input_shape():
    square = np.arange(2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4)
    turned = rotations((4, 4))
    assert sorted(turned) == ["rot180", "rot270", "rot90"]
    np.testing.assert_array_equal(turned["rot90"](square), np.rot90(square, 1, axes=(-2, -1)))
    np.testing.assert_array_equal(turned["rot90"](turned["rot270"](square)), square)
    wide = np.arange(4 * 8, dtype=np.float32).reshape(1, 1, 4, 8)
    for turn in rotations((4, 8)).values():
        out = turn(wide)
        assert out.shape == wide.shape
        np.testing.assert_array_equal(out[..., :2], wide[..., :2])  # the ends stay
        np.testing.assert_array_equal(out[..., 6:], wide[..., 6:])
    quarter = rotations((4, 8))["rot90"](wide)[..., 2:6]
    np.testing.assert_array_equal(quarter, np.rot90(wide[..., 2:6], 1, axes=(-2, -1)))
    assert np.array_equal(
        rotations((8, 4))["rot180"](wide.transpose(0, 1, 3, 2))[..., 2:6, :],
        np.rot90(wide.transpose(0, 1, 3, 2)[..., 2:6, :], 2, axes=(-2, -1)),
    )


def test_pose_varies_only_when_rotated_normals_score_like_normals():
    cfg = EngineConfig()
    normal = np.linspace(1.0, 2.0, 10)
    same = check_pose(normal, {"rot90": normal[::-1] + 0.01, "rot180": normal[::-1] - 0.01}, cfg)
    assert same.varies and same.evidence["taps"] == [3, 5]
    higher = check_pose(normal, {"rot90": normal + 0.8, "rot180": normal + 0.8}, cfg)
    assert not higher.varies and higher.evidence["mean_rotated_auroc"] > cfg.pose_max_auroc


def test_pose_is_not_checked_without_enough_held_out_normals_or_a_tap_to_drop():
    cfg = EngineConfig()
    assert skip_reason(cfg, cfg.pose_min_holdout) is None
    assert "held-out normals" in str(skip_reason(cfg, cfg.pose_min_holdout - 1))
    assert "no tap to drop" in str(skip_reason(replace(cfg, taps=(3, 5)), 20))
    assert skip_reason(replace(cfg, pose_check="off"), 20) == "off"


def test_tap_channels_pick_the_kept_stages_blocks():
    assert tap_channels((2, 3, 5, 6), [2, 3, 4, 5], (2, 3, 5)) == list(range(9))
    assert tap_channels((2, 3, 5, 6), [2, 3, 4, 5], (2, 6)) == [0, 1, 9, 10, 11, 12, 13]


def test_a_fixed_pose_keeps_every_tap(trained):
    """The engine tests' surface has a vertical grain: turned by 90 degrees it is anomalous (turned by
    180 degrees it is the same grain, so the mean over the rotations decides)."""
    res = trained[0]
    pose = res.info["pose"]
    assert pose["varies"] is False and pose["mean_rotated_auroc"] > EngineConfig().pose_max_auroc
    assert pose["rotated_auroc"]["rot90"] > 0.9 and pose["rotated_auroc"]["rot270"] > 0.9
    assert res.config.taps == EngineConfig().taps


def test_a_varying_pose_drops_the_stride_32_tap_and_serves_the_same_scores(small_config, tmp_path: Path):
    from openlookout.ml.patchcore.training import train

    normals = [png_bytes(blobs(i)) for i in range(24)]
    res = train(normals, config=replace(small_config, holdout_fraction=0.25, pose_bank_size=768))
    assert res.info["pose"]["varies"] is True and res.info["pose"]["held_out_normals"] == 6
    assert res.config.taps == (3, 5) and res.config.bank_size == 768
    # Every normal, turned three ways, joined the bank refitted on all normals.
    assert res.info["turned_images_in_bank"] == 24 and res.info["bank_size"] == 768
    res.export(tmp_path)
    assert json.loads((tmp_path / "model.json").read_text())["engine"]["taps"] == [3, 5]
    det = Detector.load(tmp_path)
    good, bad = blobs(99), with_defect(blobs(98), "spot", 1)[0]
    served = np.array([det.detect(png_bytes(i)).raw_score for i in (good, bad)])
    # Training cut the full backbone's features to the pose taps; the graph runs a shorter backbone.
    np.testing.assert_allclose(served, res.score([good, bad])[0], rtol=1e-3, atol=1e-4)
    assert served[1] > served[0] * 1.2


def test_turned_normals_are_spread_over_the_images_and_capped(small_config):
    from openlookout.ml.patchcore.training import _turned_normals

    images = [np.full((32, 32, 3), i, np.uint8) for i in range(10)]
    cfg = replace(small_config, input_size=32, input_shape=(32, 32), pose_turned_images=4)
    first_pixel = lambda x: torch.from_numpy(x[:, :1, :1, :1].copy())  # noqa: E731 (a stand-in backbone)
    feats, turned_of = _turned_normals(images, cfg, first_pixel, lambda _m: None)
    assert turned_of == [0, 2, 5, 8] * 3 and feats.shape[0] == 12
    assert _turned_normals(images, replace(cfg, pose_turns_in_bank=False), first_pixel, print)[1] == []
