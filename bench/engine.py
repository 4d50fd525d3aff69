"""Benchmark of the anomaly-detection engine on any MVTec-layout folder.

    .venv/bin/python bench/engine.py --data ../shared/datasets/mvtec-bottle [--out bench/results]

Trains on train/good (normal images only), exports the ONNX graph, evaluates the ONNX graph on test/
(ground_truth/<defect>/<stem>_mask.png masks when present), measures latency with onnxruntime at 1 and
2 threads, prints a table and writes <out>/<dataset>.json plus the report PNGs in <out>/<dataset>/.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from openlookout.ml.evaluation.evaluate import evaluate
from openlookout.ml.evaluation.report import write_report
from openlookout.ml.evaluation.results import TestSample
from openlookout.ml.patchcore.config import EngineConfig
from openlookout.ml.serving.images import open_image
from openlookout.ml.serving.inference import Detector

IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def images_in(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_EXT) if d.is_dir() else []


def load_dataset(root: Path) -> tuple[list[Path], list[TestSample]]:
    train = images_in(root / "train" / "good")
    tests = []
    for d in sorted((root / "test").iterdir()):
        for p in images_in(d):
            bad = d.name != "good"
            mask = root / "ground_truth" / d.name / f"{p.stem}_mask.png"
            tests.append(
                TestSample(p, bad, mask if bad and mask.exists() else None, d.name if bad else None, str(p))
            )
    if not train or not tests:
        raise SystemExit(f"{root}: expected train/good/* and test/*/* images")
    return train, tests


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def percentiles(ts: list[float]) -> dict[str, float]:
    a = np.asarray(ts) * 1e3
    return {"p50_ms": round(float(np.percentile(a, 50)), 2), "p95_ms": round(float(np.percentile(a, 95)), 2)}


def latency(model_dir: Path, sample: Path, runs: int, threads: int) -> dict[str, object]:
    det = Detector.load(model_dir, threads=threads)
    img = open_image(sample).resize((512, 512), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    png = buf.getvalue()
    # A camera-sized photo: the JPEG path decodes at a reduced scale (images.PREPROCESS_FAST).
    buf = io.BytesIO()
    img.resize((2048, 2048), Image.Resampling.BILINEAR).save(buf, format="JPEG", quality=92)
    jpeg = buf.getvalue()
    x = det.pixels(png)
    for _ in range(5):
        det.run(x)
    graph, e2e, full = [], [], []
    for _ in range(runs):
        t = time.perf_counter()
        det.run(x)
        graph.append(time.perf_counter() - t)
    for _ in range(runs):
        t = time.perf_counter()
        det.run(det.pixels(png))
        e2e.append(time.perf_counter() - t)
    photo = []
    for _ in range(max(10, runs // 4)):
        t = time.perf_counter()
        det.run(det.pixels(jpeg))
        photo.append(time.perf_counter() - t)
    for _ in range(max(10, runs // 4)):
        t = time.perf_counter()
        det.detect(png)
        full.append(time.perf_counter() - t)
    batch = np.repeat(x, 8, axis=0)
    det.run(batch)
    t = time.perf_counter()
    n_batches = max(3, runs // 20)
    for _ in range(n_batches):
        det.run(batch)
    thr = 8 * n_batches / (time.perf_counter() - t)
    return {
        "threads": threads,
        "graph": percentiles(graph),
        "decode_png512_preprocess_graph": percentiles(e2e),
        "decode_jpeg2048_preprocess_graph": percentiles(photo),
        "detect_with_mask_png512": percentiles(full),
        "throughput_single_img_s": round(1.0 / float(np.mean(graph)), 1),
        "throughput_batch8_img_s": round(thr, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path, help="MVTec-layout dataset folder")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    ap.add_argument("--config", default="{}", help="JSON overrides of EngineConfig fields")
    ap.add_argument("--runs", type=int, default=100, help="latency repetitions")
    ap.add_argument("--threads", type=int, default=2, help="torch threads for training")
    args = ap.parse_args(argv)

    import torch

    from openlookout.ml.patchcore.training import train

    torch.set_num_threads(args.threads)
    name = args.data.resolve().name
    out = args.out / name
    out.mkdir(parents=True, exist_ok=True)
    train_paths, tests = load_dataset(args.data)
    overrides = json.loads(args.config)
    if "taps" in overrides:
        overrides["taps"] = tuple(overrides["taps"])
    cfg = EngineConfig(**overrides)

    def log(msg: str) -> None:
        print(f"  [train] {msg}", file=sys.stderr, flush=True)

    t = time.perf_counter()
    result = train(train_paths, config=cfg, progress=log)
    train_s = time.perf_counter() - t
    t = time.perf_counter()
    onnx_path, _ = result.export(out / "model")
    export_s = time.perf_counter() - t

    det = Detector.load(out / "model", threads=2)
    # The ONNX graph must reproduce the training-time (torch) scores.
    probe = [s.image for s in tests[:: max(1, len(tests) // 8)]]
    torch_scores, _ = result.score(probe)
    onnx_scores = np.array([det.detect(p).raw_score for p in probe])
    score_diff = float(np.max(np.abs(torch_scores - onnx_scores) / np.maximum(np.abs(torch_scores), 1e-6)))

    t = time.perf_counter()
    ev = evaluate(det, tests, number_of_training_images=len(train_paths))
    eval_s = time.perf_counter() - t
    ev.write_manifest(out / f"EvaluationManifest-{name}-1.json", project_name=name, model_version="1")
    ev.write_result(out / f"EvaluationResult-{name}-1.json")
    write_report(ev, out / "report")

    lat = [latency(out / "model", tests[0].image, args.runs, th) for th in (1, 2)]  # type: ignore[arg-type]
    m = ev.metrics
    res = {
        "dataset": name,
        "data": str(args.data),
        "machine": {
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "onnxruntime": __import__("onnxruntime").__version__,
        },
        "config": cfg.to_dict(),
        "train_images": len(train_paths),
        "test_images": len(tests),
        "image_auroc": m["image_auroc"],
        "pixel_auroc": m.get("pixel_auroc"),
        "average_precision": m["average_precision"],
        "precision": m["precision"],
        "recall": m["recall"],
        "f1": m["f1"],
        "best_f1": m.get("best_f1"),
        "threshold": result.calibration.threshold,
        "calibration": result.calibration.method,
        "train_s": round(train_s, 2),
        "export_s": round(export_s, 2),
        "eval_s": round(eval_s, 2),
        "model_bytes": onnx_path.stat().st_size,
        "bank_size": result.info["bank_size"],
        "onnx_vs_torch_max_rel_diff": score_diff,
        "latency": lat,
        "per_defect_auroc": per_defect(ev),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps(res, indent=2) + "\n")
    print_table(res)
    return 0


def per_defect(ev: object) -> dict[str, float]:
    from openlookout.ml.evaluation.metrics import auroc

    images = ev.images  # type: ignore[attr-defined]
    normal = [r.raw_score for r in images if not r.label]
    out = {}
    for c in sorted({r.class_name for r in images if r.label and r.class_name}):
        bad = [r.raw_score for r in images if r.label and r.class_name == c]
        out[c] = round(auroc(np.r_[normal, bad], np.r_[np.zeros(len(normal)), np.ones(len(bad))]), 4)
    return out


def print_table(r: dict) -> None:  # type: ignore[type-arg]
    rows = [
        ("dataset", r["dataset"]),
        ("machine", f"{r['machine']['cpu']}, {r['machine']['cores']} cores"),
        ("image AUROC", f"{r['image_auroc']:.4f}"),
        ("pixel AUROC", "n/a" if r["pixel_auroc"] is None else f"{r['pixel_auroc']:.4f}"),
        ("average precision", f"{r['average_precision']:.4f}"),
        (
            "F1 / P / R at threshold",
            f"{r['f1']:.3f} / {r['precision']:.3f} / {r['recall']:.3f} ({r['calibration']})",
        ),
        ("best possible F1", "n/a" if r["best_f1"] is None else f"{r['best_f1']:.3f}"),
        ("training time", f"{r['train_s']:.1f} s ({r['train_images']} images)"),
        ("model size", f"{r['model_bytes'] / 1e6:.1f} MB (bank {r['bank_size']} patches)"),
        ("ONNX vs torch score", f"max rel diff {r['onnx_vs_torch_max_rel_diff']:.1e}"),
    ]
    for lat in r["latency"]:
        th = lat["threads"]
        rows.append(
            (f"graph p50/p95, {th} thr", f"{lat['graph']['p50_ms']:.1f} / {lat['graph']['p95_ms']:.1f} ms")
        )
        e = lat["decode_png512_preprocess_graph"]
        rows.append((f"PNG512 decode+graph, {th} thr", f"{e['p50_ms']:.1f} / {e['p95_ms']:.1f} ms"))
        e = lat["decode_jpeg2048_preprocess_graph"]
        rows.append((f"JPEG2048 decode+graph, {th} thr", f"{e['p50_ms']:.1f} / {e['p95_ms']:.1f} ms"))
        f = lat["detect_with_mask_png512"]
        rows.append((f"detect() with mask, {th} thr", f"{f['p50_ms']:.1f} / {f['p95_ms']:.1f} ms"))
        rows.append(
            (
                f"throughput, {th} thr",
                f"{lat['throughput_single_img_s']} img/s (batch 8: {lat['throughput_batch8_img_s']} img/s)",
            )
        )
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    print("per-defect image AUROC:", r["per_defect_auroc"])


if __name__ == "__main__":
    raise SystemExit(main())
