"""The evaluation report's index.html: one self-contained page (images inlined) a quality engineer
can read, print or mail: metrics, confusion matrix, curves with the operating point, score
histograms per class, and every test image labelled right or wrong, the worst first."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from .plots import plot_curve, plot_scores, safe_name, save_png
from .results import Evaluation, ImageResult

STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #bbb;padding:4px 10px;text-align:right}
th{background:#f2f2f2}td.l,th.l{text-align:left}.wrong{color:#c00;font-weight:bold}.right{color:#080}
.curves img{margin-right:12px;vertical-align:top}figure{margin:10px 0;page-break-inside:avoid}
figcaption{font-size:12px;color:#555}img{max-width:100%}
"""


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _figure(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape(str(value))


def _rows(rows: list[tuple[str, Any]]) -> str:
    """Table rows of (name, value): the name as a header cell, the value formatted by _figure."""
    return "".join(f"<tr><th class=l>{name}</th><td>{_figure(value)}</td></tr>" for name, value in rows)


def _metrics_table(ev: Evaluation) -> str:
    m = ev.metrics
    rows = [
        ("Test images", m.get("images")),
        ("Anomalous test images", m.get("anomalous_images")),
        ("Training images", ev.number_of_training_images),
        ("Threshold (anomaly score)", float(ev.threshold)),
        ("Precision", m.get("precision")),
        ("Recall", m.get("recall")),
        ("F1 score", m.get("f1")),
        ("Image AUROC", m.get("image_auroc")),
        ("Average precision", m.get("average_precision")),
        ("Pixel AUROC", m.get("pixel_auroc")),
    ]
    body = _rows(rows)
    classes = m.get("pixel_classes") or []
    if classes:
        body_classes = "".join(
            f"<tr><td class=l>{html.escape(c['ClassName'])}</td><td>{c['Precision']:.3f}</td>"
            f"<td>{c['Recall']:.3f}</td><td>{c['F1Score']:.3f}</td><td>{c['AIOU']:.3f}</td></tr>"
            for c in classes
        )
        return (
            f"<table>{body}</table><h2>Segmentation, per anomaly class (pixels)</h2><table>"
            "<tr><th class=l>class</th><th>precision</th><th>recall</th><th>F1</th><th>mean IoU</th></tr>"
            f"{body_classes}</table>"
        )
    return f"<table>{body}</table>"


def _confusion(ev: Evaluation) -> str:
    count = {key: 0 for key in ("true positive", "false positive", "true negative", "false negative")}
    for r in ev.images:
        count[r.outcome] += 1
    return (
        "<table><tr><th></th><th>predicted anomaly</th><th>predicted normal</th></tr>"
        f"<tr><th class=l>truly anomalous</th><td class=right>{count['true positive']}</td>"
        f"<td class=wrong>{count['false negative']}</td></tr>"
        f"<tr><th class=l>truly normal</th><td class=wrong>{count['false positive']}</td>"
        f"<td class=right>{count['true negative']}</td></tr></table>"
    )


def _pose(pose: dict[str, Any] | None) -> str | None:
    """What training decided about the product's pose, and the evidence (ml/patchcore/pose.py)."""
    if not pose:
        return None
    if "skipped" in pose:
        return f"not checked ({pose['skipped']})"
    auroc = f"rotated held-out normals against normals: AUROC {pose['mean_rotated_auroc']:.2f}"
    if pose["varies"]:
        return f"varies ({auroc}): scored on local features, taps {pose.get('taps')}"
    return f"fixed ({auroc})"


def _training(ev: Evaluation) -> str:
    """How the model was trained, and how much it trusted the labelled anomalies (and why)."""
    info = ev.training
    if not info:
        return ""
    sup = info.get("supervised") or {}
    shape = info.get("input_shape")
    rows = [
        ("Input (height x width)", " x ".join(map(str, shape)) if shape else None),
        ("Normal training images", info.get("normal_images")),
        ("Held out of the memory bank to calibrate", info.get("holdout_images")),
        ("Memory bank patches", info.get("bank_size")),
        ("Labelled anomalies in training", info.get("anomaly_images")),
        ("Weight given to the labelled anomalies", sup.get("weight")),
        ("Pose", _pose(info.get("pose"))),
        ("Training time (s)", info.get("seconds")),
    ]
    body = _rows(rows)
    cv = sup.get("cv_auroc") or {}
    if not cv:
        why = sup.get("skipped")
        note = f"<p>Labelled anomalies set the threshold only ({html.escape(str(why))}).</p>" if why else ""
        return f"<table>{body}</table>{note}"
    apart = sup.get("cv_clearly_apart") or {}
    cv_rows = "".join(
        f"<tr><td>{html.escape(w)}</td><td>{cv[w]:.3f}</td><td>{apart.get(w, 0.0):.3f}</td></tr>" for w in cv
    )
    return (
        f"<table>{body}</table><p>The weight was chosen by {sup.get('folds')}-fold cross-validation over the "
        f"{sup.get('labelled_anomalies')} labelled anomalies against {sup.get('held_out_normals')} held-out "
        "normal images (0 = the memory bank alone):</p><table><tr><th>weight</th><th>cross-validated AUROC"
        f"</th><th>pairs clearly apart</th></tr>{cv_rows}</table>"
    )


def write_index(ev: Evaluation, path: Path, files: dict[str, Path]) -> Path:
    curves = "".join(
        f'<img src="{_data_uri(files[name].read_bytes())}" alt="{alt}">'
        for name, alt in (("roc.png", "ROC curve"), ("pr.png", "precision-recall curve"))
        if name in files
    )
    scores = (
        f'<img src="{_data_uri(files["scores.png"].read_bytes())}" alt="scores">'
        if "scores.png" in files
        else ""
    )
    ordered = worst_first(ev.images)
    wrong = sum(1 for r in ordered if r.label != r.predicted)
    figures = []
    for r in ordered:
        if r.overlay_png is None:
            continue
        mark = (
            f"<span class=wrong>WRONG, {r.outcome}</span>"
            if r.label != r.predicted
            else "<span class=right>right</span>"
        )
        figures.append(
            f'<figure><img src="{_data_uri(r.overlay_png)}" alt="{html.escape(r.source_ref)}">'
            f"<figcaption>{mark}: {html.escape(r.source_ref)}</figcaption></figure>"
        )
    shown = len(figures)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Evaluation report</title>
<style>{STYLE}</style></head><body>
<h1>Evaluation report</h1>
<p>{len(ev.images)} test images, {wrong} classified wrongly. Anomalous is the positive class.</p>
<h2>Metrics</h2>{_metrics_table(ev)}
<h2>Confusion matrix</h2>{_confusion(ev)}
<h2>The model</h2>{_training(ev) or "<p>-</p>"}
<h2>Curves (the circle is the model's threshold)</h2><div class=curves>{curves}</div>
<h2>Score histograms</h2>{scores}
<h2>Every test image, worst first ({shown} shown)</h2>
<p>Each row: the image with the ground truth outlined in yellow | the anomaly heat map | the predicted
mask in the class colours, with the ground truth outline. A red frame marks a wrong verdict.</p>
{"".join(figures)}
</body></html>
"""
    path.write_text(page)
    return path


def write_report(ev: Evaluation, directory: str | Path) -> list[Path]:
    """index.html (self-contained), roc.png, pr.png, scores.png and overlays/*.png (worst first)."""
    d = Path(directory)
    (d / "overlays").mkdir(parents=True, exist_ok=True)
    out = []
    c = ev.curves
    op = ev.operating_point()
    if "fpr" in c:
        out.append(
            save_png(
                plot_curve(
                    c["fpr"],
                    c["tpr"],
                    "ROC",
                    "false positive rate",
                    "true positive rate",
                    f"AUROC {ev.metrics['image_auroc']:.4f}",
                    (op["fpr"], op["tpr"]),
                ),
                d / "roc.png",
            )
        )
        out.append(
            save_png(
                plot_curve(
                    c["recall"],
                    c["precision"],
                    "Precision-recall",
                    "recall",
                    "precision",
                    f"AP {ev.metrics['average_precision']:.4f}",
                    (op["recall"], op["precision"]),
                ),
                d / "pr.png",
            )
        )
    # The anomaly score (DetectAnomalies' scale) is 0.5 at the model's threshold (calibration.py).
    out.append(save_png(plot_scores(ev.images, 0.5), d / "scores.png"))
    for rank, r in enumerate(worst_first(ev.images)):
        if r.overlay_png is not None:
            target = d / "overlays" / f"{rank:03d}-{safe_name(r.source_ref)}.png"
            target.write_bytes(r.overlay_png)
            out.append(target)
    out.append(write_index(ev, d / "index.html", {p.name: p for p in out}))
    return out


def worst_first(images: list[ImageResult]) -> list[ImageResult]:
    """False positives (highest score first), false negatives (lowest first), then the right ones."""

    def key(r: ImageResult) -> tuple[int, float]:
        if r.outcome == "false positive":
            return (0, -r.raw_score)
        if r.outcome == "false negative":
            return (1, r.raw_score)
        return (2, -r.raw_score if r.label else r.raw_score)

    return sorted(images, key=key)
