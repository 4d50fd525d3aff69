"""Import and training read a manifest line the same way: training reads what import stored.

The line below was read differently by the two until they shared one reader: training took the
last classification-like label (here "normal"), named the white colour a class ("scratch"), and
took the segmentation attribute's class-name for an image label.
"""

from __future__ import annotations

import json

from openlookout.services.manifests import ANOMALY, parse_line
from openlookout.storage.tables import DatasetEntryItem
from openlookout.workflows.training import ImageSpec, MaskSpec, _image_spec

LINE = json.dumps(
    {
        "source-ref": "s3://bucket/images/a.png",
        "anomaly-label": 1,
        "anomaly-label-metadata": {"class-name": "anomaly", "type": "groundtruth/image-classification"},
        "reviewer-label": 0,
        "reviewer-label-metadata": {"class-name": "normal"},
        "anomaly-mask": "unused",
        "anomaly-mask-metadata": {"class-name": "normal", "type": "groundtruth/semantic-segmentation"},
        "anomaly-mask-ref": "s3://bucket/masks/a.png",
        "anomaly-mask-ref-metadata": {
            "internal-color-map": {
                "0": {"class-name": "scratch", "hex-color": "#FFFFFF"},
                "1": {"class-name": "dent", "hex-color": "#1F77B4"},
            },
            "type": "groundtruth/semantic-segmentation",
        },
    }
)


def stored(line: str) -> DatasetEntryItem:
    """The entry as the import's CheckChunk step writes it."""
    entry = parse_line(1, line)
    return DatasetEntryItem(
        "p/train#g",
        entry.source_ref,
        entry=entry.entry,
        labeled=entry.labeled,
        anomaly_class=entry.anomaly_class,
    )


def test_training_reads_the_label_and_the_mask_classes_that_import_stored() -> None:
    imported = parse_line(1, LINE)
    assert imported.anomaly_class == ANOMALY
    assert imported.masks[0].anomaly_types == ("dent",)  # white is background, whatever its name

    assert _image_spec(stored(LINE)) == ImageSpec(
        uri="s3://bucket/images/a.png",
        anomalous=True,
        masks=[MaskSpec(uri="s3://bucket/masks/a.png", colors={"#1f77b4": "dent"})],
    )


def test_an_image_that_import_left_unlabeled_is_not_trained_on() -> None:
    line = json.dumps({"source-ref": "s3://bucket/b.png", "x": 1, "x-metadata": {"class-name": "maybe"}})
    assert not parse_line(1, line).labeled
    assert _image_spec(stored(line)) is None


def test_a_normal_image_trains_without_its_masks() -> None:
    line = LINE.replace('"class-name": "anomaly"', '"class-name": "Normal"')
    assert _image_spec(stored(line)) == ImageSpec(uri="s3://bucket/images/a.png", anomalous=False, masks=[])
