"""The engine on a suite of data sets, in the ways L4V users train, beside a plain PatchCore.

    .venv/bin/python bench/suite.py [--data DIR ...] [--protocols unsupervised fewshot-mask fewshot-label]

Every MVTec-layout folder given (default: each data set under ../shared/datasets, plus the generated
washers and rotated parts) is run in up to three protocols:

- unsupervised: train on train/good only;
- fewshot-mask: 10 defective test images (random.Random(42)) move into training as labelled anomalies
  with their masks, and are left out of the test set;
- fewshot-label: the same 10 images with image labels only.

For each it prints image and pixel AUROC, F1 / precision / recall at the model's own threshold (the ONNX
graph served by `Detector`, exactly as DetectAnomalies answers), training time and graph p50 at 2
threads; then the means. With --baseline (default: the plain PatchCore reference folder beside the data
sets, when present) it runs that script from its own folder on every set, unsupervised, in the same run.
Results go to bench/results/suite.json.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.engine import cpu_name, load_dataset
from openlookout.ml.evaluation.evaluate import evaluate
from openlookout.ml.evaluation.metrics import auroc
from openlookout.ml.evaluation.results import TestSample
from openlookout.ml.patchcore.config import EngineConfig
from openlookout.ml.serving.inference import Detector

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PROTOCOLS = ("unsupervised", "fewshot-mask", "fewshot-label")
SHOTS, SHOT_SEED = 10, 42
WASHERS = ["--normal", "200", "--test-normal", "60", "--per-defect", "30", "--train-per-defect", "0"]
# The generated sets, by `openlookout.examples --product`: small defects, and a part at any angle.
GENERATED = {"washers": "washers", "parts": "rotated-parts"}


def default_sets() -> list[Path]:
    sets = sorted(p for p in (SHARED / "datasets").glob("*") if (p / "train" / "good").is_dir())
    generated = []
    for product, folder in GENERATED.items():
        target = ROOT / "build" / folder
        if not (target / "train").is_dir():
            cmd = [sys.executable, "-m", "openlookout.examples", str(target), *WASHERS, "--seed", "11"]
            cmd += ["--product", product]
            subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        generated.append(target)
    return [*sets, *generated]


def split(tests: list[TestSample], protocol: str) -> tuple[list[dict[str, Any]], list[TestSample]]:
    """(labelled anomalies for training, remaining test samples) for a protocol."""
    if protocol == "unsupervised":
        return [], tests
    shots = random.Random(SHOT_SEED).sample([t for t in tests if t.is_anomalous], SHOTS)
    chosen = {id(t) for t in shots}
    with_mask = protocol == "fewshot-mask"
    anomalies = [
        {"image": t.image, "mask": t.mask if with_mask else None, "class_name": t.class_name} for t in shots
    ]
    return anomalies, [t for t in tests if id(t) not in chosen]


def graph_p50(model_dir: Path, runs: int = 60) -> float:
    det = Detector.load(model_dir, threads=2)
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, *det.model_manifest.shape)).astype(np.float32)
    for _ in range(5):
        det.run(x)
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        det.run(x)
        ts.append(time.perf_counter() - t)
    return float(np.percentile(ts, 50) * 1e3)


def run_one(data: Path, protocol: str, cfg: dict[str, Any], work: Path) -> dict[str, Any]:
    from openlookout.ml.patchcore.training import train

    train_paths, tests = load_dataset(data)
    anomalies, rest = split(tests, protocol)
    t = time.perf_counter()
    config = EngineConfig.from_dict({**EngineConfig().to_dict(), **cfg})
    result = train(train_paths, anomalies=anomalies, config=config)
    train_s = time.perf_counter() - t
    model_dir = work / f"{data.name}-{protocol}"
    result.export(model_dir)
    ev = evaluate(Detector.load(model_dir, threads=2), rest, overlays=0)
    m = ev.metrics
    return {
        "set": data.name,
        "protocol": protocol,
        "image_auroc": round(m["image_auroc"], 4),
        "pixel_auroc": None if m.get("pixel_auroc") is None else round(m["pixel_auroc"], 4),
        # Of the pixels the model's own masks paint, the share that is defect (and of defect, found).
        "pixel_precision": None if m.get("pixel_precision") is None else round(m["pixel_precision"], 4),
        "pixel_recall": None if m.get("pixel_recall") is None else round(m["pixel_recall"], 4),
        "f1": round(m["f1"], 4),
        "precision": round(m["precision"], 4),
        "recall": round(m["recall"], 4),
        "train_s": round(train_s, 1),
        "graph_p50_ms": round(graph_p50(model_dir), 1),
        "input_shape": result.info["input_shape"],
        "supervised": result.info["supervised"],
        "pose": result.info.get("pose"),
        "calibration": result.calibration.method,
        "scores": {r.source_ref: [r.raw_score, r.label] for r in ev.images},
    }


def add_same_split_baseline(rows: list[dict[str, Any]]) -> None:
    """Each few-shot row also gets the unsupervised model's image AUROC on its own (smaller) test set,
    so "with labels" and "without" are compared on the same images."""
    unsup = {r["set"]: r["scores"] for r in rows if r["protocol"] == "unsupervised"}
    for r in rows:
        if r["protocol"].startswith("fewshot") and r["set"] in unsup:
            pairs = [unsup[r["set"]][ref] for ref in r["scores"]]
            scores, labels = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
            r["unsupervised_same_split"] = round(float(auroc(scores, labels)), 4)


def run_baseline(baseline: Path, data: Path, work: Path) -> dict[str, Any]:
    out = work / f"baseline-{data.name}.json"
    cmd = [sys.executable, "patchcore_baseline.py", "run", "--dataset", str(data.resolve())]
    cmd += ["--size", "256", "--coreset", "0.01", "--out", str(out)]
    subprocess.run(cmd, check=True, cwd=baseline, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r = json.loads(out.read_text())["configs"][0]
    return {
        "set": data.name,
        "protocol": "baseline",
        "image_auroc": round(r["image_auroc"], 4),
        "pixel_auroc": round(r["pixel_auroc"], 4),
        "train_s": round(r["t_train_s"], 1),
    }


def fmt(v: Any, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def print_table(rows: list[dict[str, Any]]) -> None:
    head = f"{'set':<18} {'protocol':<14} {'img AUROC':>9} {'pix AUROC':>9} {'pix P':>6} {'F1':>6} {'P':>6}"
    print(head + f" {'R':>6} {'train s':>8} {'graph ms':>8}  weight  pose  unsup on same split")
    for r in rows:
        weight = r.get("supervised", {}).get("weight")
        pose = r.get("pose") or {"skipped": True}
        pose = "-" if "skipped" in pose else "varies" if pose["varies"] else "fixed"
        print(
            f"{r['set']:<18} {r['protocol']:<14} {fmt(r['image_auroc']):>9} {fmt(r.get('pixel_auroc')):>9}"
            f" {fmt(r.get('pixel_precision')):>6}"
            f" {fmt(r.get('f1')):>6} {fmt(r.get('precision')):>6} {fmt(r.get('recall')):>6}"
            f" {fmt(r.get('train_s'), '.1f'):>8} {fmt(r.get('graph_p50_ms'), '.1f'):>8}"
            f"  {fmt(weight, 'g'):>6}  {pose:<6}  {fmt(r.get('unsupervised_same_split'))}"
        )
    print()
    for protocol in dict.fromkeys(r["protocol"] for r in rows):
        sel = [r for r in rows if r["protocol"] == protocol]
        keys = ("image_auroc", "pixel_auroc", "pixel_precision", "f1", "train_s", "graph_p50_ms")
        means = {k: _mean(sel, k) for k in (*keys, "unsupervised_same_split")}
        print(
            f"{'MEAN':<18} {protocol:<14} {fmt(means['image_auroc']):>9} {fmt(means['pixel_auroc']):>9}"
            f" {fmt(means['pixel_precision']):>6} {fmt(means['f1']):>6} {'':>6} {'':>6}"
            f" {fmt(means['train_s'], '.1f'):>8}"
            f" {fmt(means['graph_p50_ms'], '.1f'):>8}  {'':>6}  {'':<6}"
            f"  {fmt(means['unsupervised_same_split'])}"
        )


def _mean(rows: list[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return float(np.mean(vals)) if vals else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, nargs="*", help="MVTec-layout folders (default: the suite)")
    ap.add_argument("--protocols", nargs="*", default=list(PROTOCOLS), choices=PROTOCOLS)
    ap.add_argument("--config", default="{}", help="JSON overrides of EngineConfig fields")
    ap.add_argument("--baseline", type=Path, default=SHARED / "tools" / "baseline")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "suite.json")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(2)
    sets = args.data or default_sets()
    cfg = json.loads(args.config)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for data in sets:
            for protocol in args.protocols:
                rows.append(run_one(data, protocol, cfg, Path(tmp)))
                shown = {k: v for k, v in rows[-1].items() if k != "scores"}
                print(json.dumps(shown), file=sys.stderr, flush=True)
            if not args.no_baseline and (args.baseline / "patchcore_baseline.py").exists():
                rows.append(run_baseline(args.baseline, data, Path(tmp)))
    add_same_split_baseline(rows)
    order = [*PROTOCOLS, "baseline"]
    rows.sort(key=lambda r: order.index(r["protocol"]))
    print(f"machine: {cpu_name()}, config overrides: {cfg or 'none'}")
    print_table(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": cpu_name(), "config": cfg, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
