"""Training, export, inference, calibration, masks, class naming and evaluation on generated images."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from openlookout.ml.evaluation.evaluate import evaluate
from openlookout.ml.evaluation.report import write_report
from openlookout.ml.evaluation.results import TestSample
from openlookout.ml.patchcore.coreset import _greedy_batched, _greedy_groups, greedy_coreset
from openlookout.ml.serving.images import (
    PREPROCESS_BILINEAR,
    PREPROCESS_FAST,
    InvalidImageError,
    model_input,
    open_image,
    to_model_input,
)
from openlookout.ml.serving.inference import Detector
from openlookout.ml.serving.model_manifest import ModelManifest

from .conftest import jpeg_bytes, png_bytes, texture, with_defect

REPO = Path(__file__).resolve().parents[3]


def test_coreset_covers_every_cluster():
    gen = torch.Generator().manual_seed(0)
    centers = torch.randn(6, 8, generator=gen) * 20
    x = torch.cat([c + torch.randn(3000, 8, generator=gen) for c in centers])
    idx = greedy_coreset(x, 6, proj_dim=0, group_size=4096)
    assert len(set(idx.tolist())) == 6
    assert sorted((i // 3000) for i in idx.tolist()) == list(range(6))
    assert len(greedy_coreset(x[:10], 50)) == 10


def test_coreset_groups_one_at_a_time_pick_what_the_batched_search_picks():
    """The CPU runs the groups one after another (cache-resident), a GPU all at once: same picks."""
    x = torch.randn(3, 2000, 16, generator=torch.Generator().manual_seed(1))
    one_at_a_time = _greedy_groups(x, 200)
    assert torch.equal(one_at_a_time, _greedy_batched(x, 200))
    assert all(len(set(row.tolist())) == 200 for row in one_at_a_time)


def test_training_and_export(trained):
    res, d, onnx_path, manifest_path, logs = trained
    assert onnx_path.name == "model.onnx" and manifest_path.name == "model.json"
    assert onnx_path.stat().st_size > 100_000 and not list(d.glob("*.data"))  # one self-contained file
    doc = json.loads(manifest_path.read_text())
    assert doc["format_version"] == 1 and doc["input"]["shape"] == [1, 3, 128, 128]
    assert doc["input"]["normalization"]["mean"] == [127.0] * 3
    method = doc["calibration"]["method"]
    assert method == "best-f1-holdout" or method.endswith("confirmed by labelled anomalies")
    assert doc["threshold"] > 0
    assert [c["name"] for c in doc["classes"]] == ["scratch", "spot"]
    assert all(c["color"].startswith("#") and len(c["color"]) == 7 for c in doc["classes"])
    assert "Building memory bank" in logs and any(line.startswith("Extracting features: ") for line in logs)
    m = ModelManifest.read(manifest_path)
    assert m.calibration.threshold == res.calibration.threshold


def test_onnx_scores_match_torch(trained):
    res, d, *_ = trained
    det = Detector.load(d)
    imgs = [texture(300 + i) for i in range(3)] + [
        with_defect(texture(310 + i), "spot", i)[0] for i in range(3)
    ]
    torch_scores, torch_maps = res.score(imgs)
    with torch.no_grad():  # also the pure-torch graph, end to end
        from openlookout.ml.serving.images import open_image, to_model_input

        x = torch.from_numpy(np.stack([to_model_input(open_image(i), 128) for i in imgs]))
        pure = res.graph(x)[0].numpy()
    onnx_scores = np.array([det.detect(png_bytes(i)).raw_score for i in imgs])
    np.testing.assert_allclose(onnx_scores, torch_scores, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(pure, torch_scores, rtol=1e-3, atol=1e-4)
    batch = det.run(x.numpy())
    np.testing.assert_allclose(batch["anomaly_map"][:, 0], torch_maps, rtol=1e-3, atol=1e-3)


def test_detect_decisions_masks_and_class_names(trained):
    _, d, *_ = trained
    det = Detector.load(d, threads=1)
    normal = det.detect(png_bytes(texture(402)))  # grayscale, like training
    assert not normal.is_anomalous and normal.confidence > 0.5
    assert normal.anomalies == [
        {"Name": "background", "PixelAnomaly": {"TotalPercentageArea": 1.0, "Color": "#FFFFFF"}}
    ]
    mask = Image.open(io.BytesIO(normal.anomaly_mask_png))
    assert mask.size == (128, 128) and mask.mode == "RGB" and mask.getextrema() == ((255, 255),) * 3
    # Another size than training: the map and the mask come at the image's own size.
    # (No verdict asserted: resampling changes this fine synthetic grain as much as a defect does.)
    other = det.detect(png_bytes(texture(400, (150, 110))))
    assert other.anomaly_map.shape == (110, 150)
    assert Image.open(io.BytesIO(other.anomaly_mask_png)).size == (150, 110)

    colors = {c.name: c.color for c in det.classes}
    named = {}
    for kind in ("spot", "scratch"):
        img, _ = with_defect(texture(410), kind, 7)
        r = det.detect(png_bytes(img))
        assert r.is_anomalous and r.confidence > 0.5 and r.anomaly_score == r.confidence
        assert r.anomalies[0]["Name"] == "background"
        assert len(r.anomalies) >= 2
        total = sum(a["PixelAnomaly"]["TotalPercentageArea"] for a in r.anomalies)
        assert total == pytest.approx(1.0)
        main = max(r.anomalies[1:], key=lambda a: a["PixelAnomaly"]["TotalPercentageArea"])
        named[kind] = main["Name"]
        assert main["PixelAnomaly"]["Color"] == colors[main["Name"]]
        assert r.to_l4v()["AnomalyMask"].startswith("iVBORw0")
        assert "Anomalies" not in r.to_l4v(segmentation=False)
    assert named == {"spot": "spot", "scratch": "scratch"}


def test_anomaly_score_is_monotone_in_raw_score(trained):
    _, d, *_ = trained
    det = Detector.load(d)
    results = [det.detect(png_bytes(with_defect(texture(500 + i), "spot", i)[0])) for i in range(3)]
    results += [det.detect(png_bytes(texture(520 + i))) for i in range(3)]
    results.sort(key=lambda r: r.raw_score)
    probs = [r.confidence if r.is_anomalous else 1 - r.confidence for r in results]
    assert probs == sorted(probs)


def test_detector_preprocesses_as_its_manifest_says(trained, tmp_path):
    _, d, onnx_path, manifest_path, _ = trained
    doc = json.loads(manifest_path.read_text())
    assert doc["input"]["preprocessing"] == PREPROCESS_FAST
    det = Detector.load(d, threads=1)
    img, _ = with_defect(texture(600), "spot", 3)
    photo = jpeg_bytes(img.resize((1000, 760), Image.Resampling.BICUBIC))
    r = det.detect(photo)  # decoded at 1/4 scale, answered at the photo's own size
    assert r.is_anomalous and (r.width, r.height) == (1000, 760) and r.anomaly_map.shape == (760, 1000)
    assert Image.open(io.BytesIO(r.anomaly_mask_png)).size == (1000, 760)
    np.testing.assert_array_equal(det.pixels(photo), model_input(photo, 128, PREPROCESS_FAST)[0][None])

    # A model written before the rule was recorded keeps being served with the plain rule.
    del doc["input"]["preprocessing"]
    old_manifest = tmp_path / "old.json"
    old_manifest.write_text(json.dumps(doc))
    old = Detector.load((onnx_path, old_manifest), threads=1)
    assert old.preprocessing == PREPROCESS_BILINEAR
    plain = to_model_input(open_image(photo), 128, PREPROCESS_BILINEAR)[None]
    np.testing.assert_array_equal(old.pixels(photo), plain)
    assert not np.array_equal(plain, det.pixels(photo))
    assert old.detect(photo).is_anomalous


def test_invalid_image_is_rejected(trained):
    det = Detector.load(trained[1])
    with pytest.raises(InvalidImageError):
        det.detect(b"\x89PNG\r\n\x1a\n garbage")


def test_training_without_anomalies(small_config, normals):
    from openlookout.ml.patchcore.training import train

    res = train(normals[:8], config=small_config)
    assert res.calibration.method.startswith("normal-clipped-mean")
    assert [c.name for c in res.classes] == ["anomaly"] and not res.graph.has_classes
    assert res.calibration.threshold > float(np.median(res.info["holdout_normal_scores"]))
    scores, _ = res.score([with_defect(texture(600), "spot", 1)[0], texture(601)])
    assert scores[0] > scores[1]


def test_evaluation_metrics_and_files(trained, tmp_path):
    _, d, *_ = trained
    det = Detector.load(d)
    samples = [
        TestSample(png_bytes(texture(700 + i)), False, source_ref=f"s3://b/good-{i}.png") for i in range(4)
    ]
    for i in range(4):
        kind = ("spot", "scratch")[i % 2]
        img, mask = with_defect(texture(710 + i), kind, 20 + i)
        samples.append(TestSample(png_bytes(img), True, mask, kind, f"s3://b/bad-{i}.png"))
    ev = evaluate(det, samples, number_of_training_images=14, overlays=4)
    m = ev.metrics
    assert m["image_auroc"] == 1.0 and m["average_precision"] == 1.0 and m["pixel_auroc"] > 0.9
    assert m["f1"] > 0.8 and {c["ClassName"] for c in m["pixel_classes"]} == {"spot", "scratch"}
    assert len(ev.images) == 8 and ev.images[4].predicted

    man = ev.write_manifest(
        tmp_path / "EvaluationManifest-p-1.json", model_arn="arn:x", project_name="p", model_version="1"
    )
    lines = [json.loads(x) for x in man.read_text().splitlines()]
    assert len(lines) == 8 and lines[0]["source-ref"] == "s3://b/good-0.png"
    assert lines[0]["anomaly-label"] == 0 and lines[5]["anomaly-label"] == 1
    meta = lines[5]["anomaly-label-detected-metadata"]
    assert lines[5]["anomaly-label-detected"] in (0, 1) and 0 <= meta["confidence"] <= 1
    assert meta["model-arn"] == "arn:x" and meta["human-annotated"] == "no"

    doc = json.loads(ev.write_result(tmp_path / "EvaluationResult-p-1.json", model_arn="arn:x").read_text())
    assert doc["Version"] == 1 and doc["EvaluationDetails"]["NumberOfTestingImages"] == 8
    assert doc["EvaluationDetails"]["NumberOfTrainingImages"] == 14
    metrics = doc["AggregatedEvaluationResults"]["Metrics"]
    assert set(metrics) >= {"ROCAUC", "AveragePrecision", "Precision", "Recall", "F1Score"}
    assert {"Precision", "Recall", "F1Score", "AIOU", "ClassName"} <= set(
        metrics["PixelAnomalyClassMetrics"][0]
    )

    ev.training = trained[0].info  # as the training workflow does
    files = write_report(ev, tmp_path / "report")
    names = {p.name for p in files}
    assert {"roc.png", "pr.png", "scores.png"} <= names and len(
        list((tmp_path / "report/overlays").glob("*.png"))
    )
    assert Image.open(tmp_path / "report/roc.png").size == (420, 420)
    # The engine tests' grain is fixed: turned by 90 degrees it is anomalous.
    assert (
        "<th class=l>Pose</th><td>fixed (rotated held-out normals"
        in (tmp_path / "report/index.html").read_text()
    )


def test_serving_never_imports_torch(trained):
    """The inference and evaluation modules run with torch made unimportable."""
    d = trained[1]
    code = textwrap.dedent(
        f"""
        import sys, importlib.abc
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked")
        sys.meta_path.insert(0, Block())
        from openlookout.ml.serving.inference import Detector
        import openlookout.ml.evaluation.evaluate
        from PIL import Image
        import io
        buf = io.BytesIO(); Image.new("L", (90, 70), 120).save(buf, "PNG")
        r = Detector.load({str(d)!r}).detect(buf.getvalue())
        assert "torch" not in sys.modules
        print("OK", r.is_anomalous)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("OK")


def test_detail_taps_shape_the_map_but_not_the_score(trained):
    res, *_ = trained
    graph, feat = res.graph, res.graph.features
    assert res.config.detail_taps == (2,) and graph.split == feat.detail_out == 24
    # Block-diagonal projection: the detail block and the score block never mix.
    assert torch.count_nonzero(feat.proj[: feat.detail_in, feat.detail_out :]) == 0
    assert torch.count_nonzero(feat.proj[feat.detail_in :, : feat.detail_out]) == 0
    imgs = [texture(400), with_defect(texture(401), "spot", 1)[0]]
    scores, maps = res.score(imgs)
    saved = graph.detail_bank.clone()
    try:
        graph.detail_bank.mul_(0.5)
        scores2, maps2 = res.score(imgs)
    finally:
        graph.detail_bank = saved
    np.testing.assert_allclose(scores2, scores, rtol=1e-6)
    assert not np.allclose(maps2, maps)


def test_without_detail_taps_the_score_is_the_maps_top_mean(small_config, normals):
    from dataclasses import replace

    from openlookout.ml.patchcore.training import train

    res = train(normals[:6], config=replace(small_config, detail_taps=(), bank_size=128))
    assert res.graph.split == 0 and res.graph.detail_bank.numel() == 0
    scores, maps = res.score([texture(500), with_defect(texture(501), "scratch", 2)[0]])
    k = res.graph.top_k
    top = np.sort(maps.reshape(len(maps), -1), axis=1)[:, -k:].mean(1)
    np.testing.assert_allclose(scores, top, rtol=1e-5)
    assert res.calibration.pixel_threshold == pytest.approx(res.calibration.threshold)


def test_the_input_takes_the_training_images_aspect_ratio(small_config, tmp_path):
    from openlookout.ml.patchcore.training import train

    wide = [png_bytes(texture(600 + i, size=(256, 96))) for i in range(6)]
    res = train(wide, config=small_config)
    height, width = res.config.shape
    assert (height, width) == (64, 224) and height * width <= 128 * 128
    res.export(tmp_path)
    doc = json.loads((tmp_path / "model.json").read_text())
    assert doc["input"]["shape"] == [1, 3, 64, 224] and doc["engine"]["input_shape"] == [64, 224]
    det = Detector.load(tmp_path)
    bad, _ = with_defect(texture(610, size=(256, 96)), "spot", 3)
    r = det.detect(png_bytes(bad))
    assert (r.width, r.height) == (256, 96) and r.graph_map.shape == (16, 56)
    assert Image.open(io.BytesIO(r.anomaly_mask_png)).size == (256, 96)
    torch_scores, _ = res.score([bad])
    np.testing.assert_allclose([r.raw_score], torch_scores, rtol=1e-3, atol=1e-4)


def test_input_shapes_keep_the_pixel_budget_and_snap_to_the_stride():
    from openlookout.ml.patchcore.config import input_shape_for

    assert input_shape_for(1.0, 256) == (256, 256)
    assert input_shape_for(512 / 208, 256) == (160, 416)
    assert input_shape_for(200 / 500, 256) == (416, 160)
    assert input_shape_for(50.0, 256) == (128, 512)  # clamped at 4:1


def test_models_trained_before_the_new_input_rules_keep_their_config():
    from openlookout.ml.patchcore.config import EngineConfig

    old = EngineConfig.from_dict({"backbone": "efficientnet-lite0", "input_size": 224, "taps": [3, 5, 6]})
    assert old.input_shape is None and old.shape == (224, 224)
    assert old.detail_taps == () and old.aggregate_zero_pad is False
    assert EngineConfig.from_dict(EngineConfig().to_dict()) == EngineConfig()


def test_labelled_defects_train_a_head_that_the_onnx_graph_carries(trained):
    res, d, *_ = trained
    evidence = res.info["supervised"]
    assert evidence["labelled_anomalies"] == 8 and evidence["with_masks"] == 8 and evidence["folds"] == 5
    assert set(evidence["cv_auroc"]) == {"0", "0.25", "0.5", "1", "2", "4"}
    assert res.graph.has_head == (evidence["weight"] > 0)
    doc = json.loads((d / "model.json").read_text())
    assert doc["training"]["supervised"] == evidence


def test_labels_that_do_not_help_leave_the_model_unsupervised(small_config, normals):
    """Labelled 'anomalies' that are ordinary normal images: cross-validation must keep weight 0."""
    from openlookout.ml.patchcore.training import train

    fake = [{"image": png_bytes(texture(700 + i)), "class_name": "fake"} for i in range(6)]
    res = train(normals, anomalies=fake, config=small_config)
    assert res.info["holdout_images"] == 5 and "cv_auroc" in res.info["supervised"]
    assert res.info["supervised"]["weight"] == 0.0 and not res.graph.has_head
    few = train(normals[:14], anomalies=fake, config=small_config)
    assert few.info["supervised"]["skipped"] == "6 labelled anomalies, 3 held-out normals"


def test_a_consistent_defect_is_learnt_and_scored_higher(small_config, normals, tmp_path):
    """A faint defect the memory bank barely sees, labelled with masks: the head must be weighted in and
    separate new instances better than the unsupervised model does."""
    from openlookout.ml.evaluation.metrics import auroc
    from openlookout.ml.patchcore.training import train

    def faint(seed: int) -> tuple[Image.Image, Image.Image]:
        img = texture(800 + seed).convert("RGB")
        mask = Image.new("L", img.size, 0)
        rng = np.random.default_rng(seed)
        x, y = int(rng.integers(20, 90)), int(rng.integers(20, 90))
        arr = np.asarray(img).astype(np.int16)
        arr[y : y + 16, x : x + 16] += 8  # a slightly brighter square
        from PIL import ImageDraw

        ImageDraw.Draw(mask).rectangle((x, y, x + 15, y + 15), fill=255)
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)), mask

    labelled = [dict(zip(("image", "mask"), faint(i), strict=True)) for i in range(8)]
    unsup = train(normals, config=small_config)
    sup = train(normals, anomalies=labelled, config=small_config)
    assert sup.info["supervised"]["weight"] > 0 and sup.graph.has_head
    tests = [texture(900 + i) for i in range(6)] + [faint(50 + i)[0] for i in range(6)]
    y = np.r_[np.zeros(6), np.ones(6)]
    torch_scores = sup.score(tests)[0]
    a0, a1 = auroc(unsup.score(tests)[0], y), auroc(torch_scores, y)
    assert a1 >= a0 and a1 > 0.9
    sup.export(tmp_path)  # the head is part of the one ONNX graph
    onnx_scores = [Detector.load(tmp_path).detect(png_bytes(t)).raw_score for t in tests]
    np.testing.assert_allclose(onnx_scores, torch_scores, rtol=1e-3, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (the GPU training option)")
def test_training_on_cuda_gives_the_cpu_model(small_config, normals, labeled):
    """The GPU option runs the backbone and the coreset search on CUDA and the rest on the CPU."""
    from dataclasses import replace

    from openlookout.ml.patchcore.graph import PatchFeatures
    from openlookout.ml.patchcore.training import _backbone_runner, train

    feat = PatchFeatures(small_config).eval()
    x = np.stack([to_model_input(open_image(i), 128) for i in normals[:4]])
    on_cpu = _backbone_runner(feat, (128, 128), torch.device("cpu"))(x)
    on_gpu = _backbone_runner(feat, (128, 128), torch.device("cuda"))(x)
    np.testing.assert_allclose(on_gpu.numpy(), on_cpu.numpy(), rtol=1e-3, atol=1e-4)  # float32, no TF32

    cpu = train(normals, anomalies=labeled, config=replace(small_config, device="cpu"))
    gpu = train(normals, anomalies=labeled, config=replace(small_config, device="cuda"))
    assert gpu.info["device"].startswith("cuda") and cpu.info["device"] == "cpu"
    assert gpu.graph.bank_t.device.type == "cpu" and gpu.info["bank_size"] == cpu.info["bank_size"]
    # A 512-patch bank of 24 tiny images: near-tied coreset picks move normal scores by a few percent.
    probe = [texture(400 + i) for i in range(3)] + [
        with_defect(texture(410 + i), "spot", i)[0] for i in range(3)
    ]
    gpu_scores = gpu.score(probe)[0]
    np.testing.assert_allclose(gpu_scores, cpu.score(probe)[0], rtol=0.05)
    assert gpu.calibration.threshold == pytest.approx(cpu.calibration.threshold, rel=0.05)
    assert (gpu_scores[3:] >= gpu.calibration.threshold).all()


def test_the_head_weight_is_the_best_cross_validated_and_the_smallest_on_a_tie():
    from openlookout.ml.patchcore.supervised import _pick

    # (cross-validated AUROC, share of pairs clearly apart) per weight; 0 is the unsupervised model.
    tied = {0.0: (0.95, 0.5), 0.25: (0.97, 0.6), 1.0: (0.97, 0.9), 4.0: (0.94, 0.95)}
    assert _pick(tied, min_gain=0.01, min_auroc=0.7) == 0.25  # clearly-apart pairs do not break ties
    assert _pick({**tied, 1.0: (0.975, 0.9)}, min_gain=0.01, min_auroc=0.7) == 1.0
    assert _pick(tied, min_gain=0.03, min_auroc=0.7) == 0.0  # no weight gains enough
    assert _pick({0.0: (0.5, 0.0), 1.0: (0.65, 0.2)}, min_gain=0.01, min_auroc=0.7) == 0.0
    # AUROCs are counts of pairs (here of 200): 188 - 186 pairs is a gain of 0.01, though
    # 186 / 200 + 0.01 > 188 / 200 in floating point.
    assert _pick({0.0: (186 / 200, 0.5), 0.25: (188 / 200, 0.5)}, min_gain=0.01, min_auroc=0.7) == 0.25
