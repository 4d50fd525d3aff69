"""The images tests use, made by the project's own generator (openlookout.examples): JPEGs of a
washer on a textured table with drawn scratches, dents and stains and their masks, in MVTec AD
layout. The same on every machine, from a clean clone, nothing downloaded. The `washers` fixture
(tests/conftest.py) makes them once per session."""

from __future__ import annotations

from pathlib import Path

# openlookout.examples.generate's arguments: train/good, test/good, test/<defect> and labelled
# train/<defect> images for each of the three defects (256 px JPEGs, masks in ground_truth/).
WASHERS = {"normal": 60, "test_normal": 12, "per_defect": 8, "train_per_defect": 4, "seed": 7}
DEFECTS = ("scratch", "dent", "stain")
TRAIN_NORMAL, TRAIN_ANOMALY = WASHERS["normal"], len(DEFECTS) * WASHERS["train_per_defect"]
TEST_NORMAL, TEST_ANOMALY = WASHERS["test_normal"], len(DEFECTS) * WASHERS["per_defect"]


def make_washers(directory: Path) -> Path:
    from openlookout.examples import generate

    return generate(directory, **WASHERS)


def labelled_test_images(washers: Path) -> list[tuple[Path, bool]]:
    """Every test image with its label (anomalous or not), in a stable order."""
    return [(path, path.parent.name != "good") for path in sorted((washers / "test").glob("*/*.jpg"))]
