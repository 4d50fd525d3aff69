"""The evaluation report's ordering and page, from hand-made results (no model needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from openlookout.ml.evaluation.plots import plot_scores
from openlookout.ml.evaluation.report import worst_first, write_index
from openlookout.ml.evaluation.results import Evaluation, ImageResult


def result(ref: str, label: bool, predicted: bool, score: float, cls: str | None = None) -> ImageResult:
    return ImageResult(ref, label, predicted, 0.9, 0.5, score, cls, [], overlay_png=b"\x89PNG")


def test_worst_first_puts_false_positives_then_false_negatives_first() -> None:
    images = [
        result("tn", False, False, 1.0),
        result("fn-close", True, False, 2.5),
        result("fp-high", False, True, 4.0),
        result("tp", True, True, 3.5),
        result("fn-far", True, False, 1.1),
        result("fp-low", False, True, 3.0),
    ]
    order = [r.source_ref for r in worst_first(images)]
    assert order[:4] == ["fp-high", "fp-low", "fn-far", "fn-close"]
    assert [r.outcome for r in images[:2]] == ["true negative", "false negative"]


def test_index_has_metrics_confusion_and_every_image(tmp_path: Path) -> None:
    images = [
        result("s3://b/good/1.png", False, True, 3.0),
        result("s3://b/dent/2.png", True, True, 4.0, "dent"),
    ]
    ev = Evaluation(
        {"images": 2, "precision": 0.5, "f1": 0.667}, images, threshold=2.5, number_of_training_images=9
    )
    scores = tmp_path / "scores.png"
    plot_scores(images, 2.5).save(scores)
    page = write_index(ev, tmp_path / "index.html", {"scores.png": scores}).read_text()
    assert page.index("good/1.png") < page.index("dent/2.png")  # the false positive first
    assert "WRONG, false positive" in page and page.count("<figure>") == 2
    assert ">0.500<" in page and "truly normal" in page


def test_score_histogram_has_a_row_per_class() -> None:
    images = [
        result("a", False, False, 1.0),
        result("b", True, True, 3.0, "dent"),
        result("c", True, True, 3.2, "stain"),
    ]
    picture = np.asarray(plot_scores(images, 2.0))
    assert picture.shape[0] == 30 + 70 * 3 + 34  # normal, dent, stain


def test_index_says_how_much_the_model_trusted_its_labelled_anomalies(tmp_path: Path) -> None:
    training = {
        "input_shape": [160, 416],
        "normal_images": 150,
        "anomaly_images": 10,
        "supervised": {
            "labelled_anomalies": 10,
            "folds": 5,
            "held_out_normals": 15,
            "cv_auroc": {"0": 0.833, "0.25": 0.947},
            "cv_clearly_apart": {"0": 0.5, "0.25": 0.8},
            "weight": 0.25,
        },
    }
    ev = Evaluation({"images": 0}, [], threshold=1.0, training=training)
    page = write_index(ev, tmp_path / "index.html", {}).read_text()
    assert "160 x 416" in page and "5-fold cross-validation over the 10 labelled anomalies" in page
    assert "<td>0.25</td><td>0.947</td><td>0.800</td>" in page
    skipped = Evaluation({"images": 0}, [], threshold=1.0, training={"supervised": {"skipped": "off"}})
    assert "threshold only (off)" in write_index(skipped, tmp_path / "s.html", {}).read_text()
