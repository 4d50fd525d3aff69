"""Training on a GPU against training on the CPU: the same model, to float rounding?

    .venv/bin/python bench/devices.py --data DATASET [--data ...] [--protocol fewshot-mask ...]

The GPU option (`TrainingCompute=GPU`, `EngineConfig.device="auto"` on a CUDA machine) runs the backbone
in eager torch on CUDA, where the CPU runs the same backbone exported to onnxruntime. This trains each
data set once per device with the same config, exports both ONNX graphs and scores `test/` with
onnxruntime on the CPU, then prints what differs: training time, threshold, held-out scores, the
supervised head's decision, test scores, verdicts and AUROC. Needs a CUDA device; prints one JSON
object per data set and protocol.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.engine import load_dataset
from bench.suite import split
from openlookout.ml.evaluation.metrics import auroc
from openlookout.ml.patchcore.config import EngineConfig
from openlookout.ml.serving.inference import Detector


def train_on(device: str, data: Path, protocol: str, work: Path) -> dict[str, Any]:
    """Train on one device, export, and score the protocol's test images on the CPU."""
    from openlookout.ml.patchcore.training import train

    normals, tests = load_dataset(data)
    anomalies, tests = split(tests, protocol)
    t = time.perf_counter()
    result = train(normals, anomalies=anomalies, config=EngineConfig(device=device))
    seconds = time.perf_counter() - t
    result.export(work / device)
    det = Detector.load(work / device, threads=4)
    detections = [det.detect(s.image) for s in tests]
    labels = np.array([s.is_anomalous for s in tests])
    scores = np.array([d.raw_score for d in detections])
    return {
        "seconds": seconds,
        "device": result.info["device"],
        "threshold": result.calibration.threshold,
        "holdout": np.array(result.info["holdout_normal_scores"]),
        "weight": (result.info.get("supervised") or {}).get("weight"),
        "scores": scores,
        "verdicts": np.array([d.is_anomalous for d in detections]),
        "masks": [d.class_image for d in detections],
        "auroc": auroc(scores, labels),
    }


def rel(a: np.ndarray | float, b: np.ndarray | float) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-9))) if a.size else 0.0


def compare(data: Path, protocol: str, other: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        cpu = train_on("cpu", data, protocol, Path(tmp) / "a")
        gpu = train_on(other, data, protocol, Path(tmp) / "b")
    differing = sum(int(np.sum(a != b)) for a, b in zip(cpu["masks"], gpu["masks"], strict=True))
    return {
        "dataset": data.name,
        "protocol": protocol,
        "train_s": {"cpu": round(cpu["seconds"], 2), other: round(gpu["seconds"], 2)},
        "device_used": gpu["device"],
        "threshold_rel_diff": rel(cpu["threshold"], gpu["threshold"]),
        "holdout_scores_max_rel_diff": rel(cpu["holdout"], gpu["holdout"]),
        "supervised_weight": {"cpu": cpu["weight"], other: gpu["weight"]},
        "test_scores_max_rel_diff": rel(cpu["scores"], gpu["scores"]),
        "verdicts_differ": int(np.sum(cpu["verdicts"] != gpu["verdicts"])),
        "test_images": len(cpu["scores"]),
        "mask_pixels_differ": differing / max(1, sum(m.size for m in cpu["masks"])),
        "image_auroc": {"cpu": round(cpu["auroc"], 4), other: round(gpu["auroc"], 4)},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path, action="append", help="MVTec-layout folder")
    ap.add_argument("--protocol", action="append", choices=["unsupervised", "fewshot-mask", "fewshot-label"])
    ap.add_argument("--device", default="cuda", help="the device compared with the CPU (cpu: a dry run)")
    args = ap.parse_args(argv)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark compares CUDA training with CPU training")
    if args.device == "cuda":
        print(json.dumps({"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}), flush=True)
    for data in args.data:
        for protocol in args.protocol or ["unsupervised"]:
            print(json.dumps(compare(data, protocol, args.device)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
