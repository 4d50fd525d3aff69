"""Torch-free building blocks: images, calibration, metrics, masks."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from openlookout.ml.evaluation.metrics import auroc, average_precision, precision_recall_f1
from openlookout.ml.evaluation.thresholds import best_f1_threshold, calibrate, clipped_mean_std
from openlookout.ml.serving.calibration import Calibration
from openlookout.ml.serving.images import (
    PREPROCESS_BILINEAR,
    PREPROCESS_FAST,
    InvalidImageError,
    _decode,
    model_input,
    open_image,
    to_model_input,
)
from openlookout.ml.serving.masks import (
    class_index_image,
    label_components,
    load_mask,
    mask_png,
    mask_rgb888,
    render,
    split_by_color,
)
from openlookout.ml.serving.model_manifest import AnomalyClass, ModelManifest

from .conftest import jpeg_bytes, png_bytes, texture


def test_open_image_accepts_bytes_paths_pil_and_arrays(tmp_path):
    gray = texture(0, (150, 90))
    p = tmp_path / "a.jpg"
    gray.save(p)
    for src in (png_bytes(gray), p, str(p), gray, np.asarray(gray)):
        img = open_image(src)
        assert img.mode == "RGB" and img.size == (150, 90)
    x = to_model_input(open_image(png_bytes(gray)), 64)
    assert x.shape == (3, 64, 64) and x.dtype == np.float32 and x.min() >= 0 and x.max() <= 255


def test_fast_preprocessing_decodes_big_jpegs_small_and_keeps_the_original_size():
    photo = jpeg_bytes(texture(2).resize((1100, 700), Image.Resampling.BICUBIC))
    # libjpeg's DCT scaling: 1/4 keeps both sides >= 128 (1/8 would make the height 88).
    assert _decode(photo, draft_size=128)[0].size == (275, 175)
    assert _decode(photo)[0].size == (1100, 700)
    fast, size = model_input(photo, 128, PREPROCESS_FAST)
    plain, plain_size = model_input(photo, 128, PREPROCESS_BILINEAR)
    assert size == plain_size == (1100, 700) and fast.shape == plain.shape == (3, 128, 128)
    # Another rule, hence recorded per model; yet the same picture to within a few grey levels.
    assert 0 < float(np.abs(fast - plain).mean()) < 2.0
    # PNGs and small images take the box reduction only; nothing to reduce leaves the pixels alone.
    small = png_bytes(texture(3, (100, 90)))
    np.testing.assert_array_equal(model_input(small, 64)[0], model_input(small, 64, PREPROCESS_BILINEAR)[0])
    with pytest.raises(ValueError, match="unknown preprocessing"):
        model_input(small, 64, "nearest")


def test_manifest_records_the_preprocessing_and_older_manifests_read_as_bilinear():
    m = ModelManifest(input_size=64, calibration=calibrate(np.array([1.0, 1.1, 0.9])), classes=[])
    assert m.preprocessing == PREPROCESS_BILINEAR
    m.preprocessing = PREPROCESS_FAST
    doc = m.to_dict()
    assert doc["input"]["preprocessing"] == PREPROCESS_FAST and "JPEG" in doc["input"]["resize"]
    assert ModelManifest.from_dict(doc).preprocessing == PREPROCESS_FAST
    del doc["input"]["preprocessing"]
    assert ModelManifest.from_dict(doc).preprocessing == PREPROCESS_BILINEAR
    doc["input"]["preprocessing"] = "lanczos"
    with pytest.raises(ValueError, match="lanczos"):
        ModelManifest.from_dict(doc)


def test_transparent_pixels_become_white():
    img = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    assert open_image(png_bytes(img)).getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize("data", [b"", b"not an image", png_bytes(texture(1))[:60]])
def test_undecodable_image_raises_invalid_image_error(data):
    with pytest.raises(InvalidImageError):
        open_image(data)


def test_load_mask_reads_binary_and_coloured_masks():
    m = np.zeros((10, 12), np.uint8)
    m[2:5, 3:6] = 255
    assert load_mask(Image.fromarray(m), (12, 10)).sum() == 9
    rgb = Image.new("RGB", (12, 10), "white")
    rgb.putpixel((1, 1), (0x23, 0xA4, 0x36))
    got = load_mask(rgb, (12, 10))
    assert got.sum() == 1 and got[1, 1]
    assert load_mask(m, (24, 20)).sum() == 36


def test_a_colour_mask_splits_into_one_mask_per_class(tmp_path):
    rgb = Image.new("RGB", (12, 10), "white")
    rgb.paste((0xD6, 0x27, 0x28), (0, 0, 3, 2))  # 6 px of scratch, within tolerance of #D62728 below
    rgb.paste((0x1F, 0x77, 0xB4), (5, 5, 7, 8))  # 6 px of spot
    rgb.putpixel((11, 9), (10, 200, 10))  # a colour the map does not name
    path = tmp_path / "mask.png"
    rgb.save(path)
    parts = split_by_color(path, {"#D0202A": "scratch", "#1F77B4": "spot", "#00FF00": "absent"})
    assert [(p.class_name, p.color, int((p.mask == 255).sum())) for p in parts] == [
        ("scratch", "#D0202A", 6),
        ("spot", "#1F77B4", 6),
    ]
    assert parts[1].mask.shape == (10, 12) and set(np.unique(parts[1].mask)) == {0, 255}
    (unnamed,) = split_by_color(path, {"#00FF00": "absent"})  # no named colour: every painted pixel
    assert unnamed.class_name is None and int((unnamed.mask == 255).sum()) == 13
    assert split_by_color(Image.new("RGB", (4, 4), "black"), {"#00FF00": "x"}) == []
    with pytest.raises(InvalidImageError):
        split_by_color(b"not a png", {})


def test_calibration_is_monotone_and_consistent():
    rng = np.random.default_rng(0)
    cal = calibrate(rng.normal(1.0, 0.1, 30), rng.normal(2.0, 0.3, 20))
    assert cal.method == "normal-clipped-mean+2.5std, confirmed by labelled anomalies"
    s = np.linspace(0, 4, 400)
    p = cal.probability(s)
    assert np.all(np.diff(p) > 0) and abs(float(cal.probability(cal.threshold)) - 0.5) < 1e-9
    for x in s:
        anomalous, conf, prob = cal.decide(float(x))
        assert anomalous == (x >= cal.threshold)
        assert 0.5 <= conf <= 1.0
        assert abs((conf if anomalous else 1 - conf) - prob) < 1e-12
    again = Calibration.from_dict(cal.to_dict())
    assert again.threshold == cal.threshold and again.scale_above == cal.scale_above


def test_threshold_without_anomalies_uses_normal_distribution():
    n = np.array([1.0, 1.1, 0.9, 1.05, 0.95])
    cal = calibrate(n, None, k_sigma=3.0, clip_sigma=0.0, margin=1.0)
    assert cal.threshold == pytest.approx(max(n.mean() + 3 * n.std(), n.max()))
    assert calibrate(n, None).threshold == pytest.approx(n.mean() + 2.5 * n.std())
    assert cal.anomaly_median is None and cal.scale_above == cal.scale_below
    assert float(cal.probability(np.median(n))) == pytest.approx(0.05, abs=1e-6)


def test_one_odd_held_out_normal_does_not_set_the_threshold():
    rng = np.random.default_rng(0)
    usual = rng.normal(1.0, 0.1, 19)
    odd = np.r_[usual, 3.0]  # e.g. a defective part labelled normal
    cal = calibrate(odd, None)
    assert cal.threshold == pytest.approx(usual.mean() + 2.5 * usual.std())
    assert cal.threshold < 1.3
    # Without clipping the odd image would lift the threshold past most defects.
    assert calibrate(odd, None, clip_sigma=0.0).threshold > 2.0


def test_clipping_keeps_a_minimum_of_scores():
    mean, std = clipped_mean_std(np.array([1.0, 1.0, 1.0, 5.0]), 0.5)
    assert (mean, std) == (2.0, pytest.approx(np.std([1.0, 1.0, 1.0, 5.0])))


def test_labelled_anomalies_move_the_threshold_only_when_they_clearly_disagree():
    rng = np.random.default_rng(1)
    normal = rng.normal(1.0, 0.1, 20)
    rule = calibrate(normal, None).threshold
    # Ten anomalies, one just under the rule: a best-F1 cut would chase it; the rule stays.
    close = np.r_[rule - 0.01, rng.uniform(rule + 0.2, rule + 1.0, 9)]
    assert calibrate(normal, close).threshold == rule
    # Subtle defects: most score under the rule, so the labels' best cut replaces it.
    subtle = rng.uniform(1.1, 1.2, 10)
    cal = calibrate(normal, subtle)
    assert cal.method == "best-f1-holdout" and cal.threshold < rule


def test_best_f1_threshold_separates():
    t, f1 = best_f1_threshold(np.array([0.1, 0.2, 0.3, 0.8, 0.9]), np.array([0, 0, 0, 1, 1]))
    assert 0.3 < t < 0.8 and f1 == 1.0


def test_metrics():
    y = np.array([0, 0, 1, 1])
    assert auroc(np.array([0.1, 0.2, 0.3, 0.4]), y) == 1.0
    assert auroc(np.array([0.4, 0.3, 0.2, 0.1]), y) == 0.0
    assert auroc(np.array([0.5, 0.5, 0.5, 0.5]), y) == 0.5
    assert auroc(np.array([0.1, 0.4, 0.35, 0.8]), y) == 0.75
    assert average_precision(np.array([0.1, 0.2, 0.3, 0.4]), y) == 1.0
    assert average_precision(np.array([0.9, 0.2, 0.3, 0.4]), y) == pytest.approx((0.5 + 2 / 3) / 2)
    assert precision_recall_f1(np.array([1, 0, 1, 1]), y) == pytest.approx((2 / 3, 1.0, 0.8))


def test_components_and_class_voting():
    grid = np.zeros((6, 6), bool)
    grid[0:2, 0:2] = True
    grid[4:6, 3:6] = True
    labels, n = label_components(grid)
    assert n == 2 and labels[0, 0] != labels[5, 5]
    classes = [AnomalyClass(1, "scratch", "#2CA02C"), AnomalyClass(2, "dent", "#1F77B4")]
    mask = np.zeros((60, 60), bool)
    mask[0:20, 0:20] = True
    mask[40:60, 30:60] = True
    cmap = np.ones((6, 6), np.int64)
    cmap[4:6, 3:6] = 2
    cmap[0, 0] = 2  # a minority vote inside the first region must not split it
    img = class_index_image(mask, np.ones((60, 60), np.float32), cmap, classes)
    assert set(np.unique(img[0:20, 0:20])) == {1} and set(np.unique(img[40:60, 30:60])) == {2}
    assert (img[~mask] == 0).all()


@pytest.mark.parametrize("dtype", [np.uint8, np.int32])  # class_index_image's two outputs
def test_render_follows_l4v_conventions(dtype):
    classes = [AnomalyClass(1, "scratch", "#2CA02C"), AnomalyClass(2, "dent", "#1F77B4")]
    ci = np.zeros((10, 20), dtype)
    ci[0:2, 0:5] = 2
    png, anomalies = render(ci, classes)
    assert anomalies[0] == {
        "Name": "background",
        "PixelAnomaly": {"TotalPercentageArea": 0.95, "Color": "#FFFFFF"},
    }
    assert [a["Name"] for a in anomalies] == ["background", "dent"]  # only classes found
    assert anomalies[1]["PixelAnomaly"] == {"TotalPercentageArea": 0.05, "Color": "#1F77B4"}
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG" and img.mode == "RGB" and img.size == (20, 10)
    assert img.getpixel((19, 9)) == (255, 255, 255) and img.getpixel((0, 0)) == (0x1F, 0x77, 0xB4)
    assert (np.asarray(img)[0:2, 0:5] == (0x1F, 0x77, 0xB4)).all() and (np.asarray(img)[2:] == 255).all()


@pytest.mark.parametrize("dtype", [np.uint8, np.int32])
@pytest.mark.parametrize("anomalous", [True, False])
def test_the_rgb888_mask_is_the_png_decoded(dtype, anomalous):
    # The edge agent sends mask_rgb888 where the API sends the PNG: the pixels must be the same.
    classes = [AnomalyClass(1, "scratch", "#2CA02C"), AnomalyClass(2, "dent", "#1F77B4")]
    ci = np.zeros((10, 20), dtype)
    if anomalous:
        ci[0:2, 0:5], ci[5:9, 10:12] = 2, 1
    rgb = mask_rgb888(ci, classes)
    assert rgb == Image.open(io.BytesIO(mask_png(ci, classes))).convert("RGB").tobytes()
    assert len(rgb) == 10 * 20 * 3 and (rgb[:3] == bytes((0x1F, 0x77, 0xB4))) == anomalous


def test_render_of_a_normal_image_is_all_background():
    classes = [AnomalyClass(1, "scratch", "#2CA02C")]
    png, anomalies = render(np.zeros((30, 40), np.uint8), classes)
    assert anomalies == [
        {"Name": "background", "PixelAnomaly": {"TotalPercentageArea": 1.0, "Color": "#FFFFFF"}}
    ]
    img = Image.open(io.BytesIO(png))
    assert img.mode == "RGB" and img.size == (40, 30) and img.getextrema() == ((255, 255),) * 3
    assert render(np.zeros((30, 40), np.int32), classes)[0] == png  # encoded once per size
    assert Image.open(io.BytesIO(render(np.zeros((31, 40), np.uint8), classes)[0])).size == (40, 31)


def test_the_defaults_are_the_only_configuration_and_overrides_apply():
    from openlookout.ml.patchcore.config import EngineConfig

    assert not hasattr(EngineConfig, "coarse") and not hasattr(EngineConfig, "accurate")
    assert EngineConfig().taps == (3, 5, 6) and EngineConfig().detail_taps == (2,)
    assert EngineConfig(input_size=224).input_size == 224
    EngineConfig().validate()
