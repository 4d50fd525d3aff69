"""What `openlookout manifest from-folder` makes of a folder: which images, labels and masks go
into which manifest, the masks in L4V's format, and each manifest line.

Two layouts are understood:

* MVTec AD: `train/good/*` -> the train manifest (normal); `test/good/*` (normal) and
  `test/<defect>/*` (anomaly) -> the test manifest, with `ground_truth/<defect>/<stem>_mask.png`
  converted to an L4V segmentation mask (white background, the defect in its class colour) and
  referenced through `anomaly-mask-ref` with an `internal-color-map`.
* `normal/` and `anomaly/` folders -> one manifest. Images in `anomaly/<defect>/` get that anomaly
  type; a mask is `masks/<same relative path>.png` or `<stem>_mask.png` beside the image.

Anomaly type names become `[a-zA-Z0-9]+` (the service model's AnomalyName), e.g. `broken_large` ->
`brokenLarge`. Nothing is written into DIR (manifest.py uploads).
"""

from __future__ import annotations

import colorsys
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
JOB_NAME = "labeling-job/openlookout-from-folder"
_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf"]


class LayoutError(ValueError):
    """The folder is neither an MVTec AD category nor a normal/ + anomaly/ folder."""


@dataclass(frozen=True)
class Sample:
    image: Path
    anomaly_type: str | None  # None for a normal image
    mask: Path | None = None


@dataclass
class ManifestPlan:
    key: str  # where the manifest goes in the bucket
    samples: list[Sample] = field(default_factory=list)


def anomaly_name(folder_name: str) -> str:
    words = [word for word in re.split(r"[^a-zA-Z0-9]+", folder_name) if word]
    if not words:
        raise LayoutError(f"the folder name {folder_name!r} gives no anomaly type name")
    return words[0][0].lower() + words[0][1:] + "".join(word[0].upper() + word[1:] for word in words[1:])


def class_colors(names: Iterable[str]) -> dict[str, str]:
    ordered = sorted(set(names))
    colors = {}
    for index, name in enumerate(ordered):
        if index < len(_PALETTE):
            colors[name] = _PALETTE[index]
        else:  # more classes than the palette: spread hues evenly
            r, g, b = colorsys.hsv_to_rgb((index * 0.618034) % 1.0, 0.8, 0.85)
            colors[name] = f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"
    return colors


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def plan(
    root: Path, prefix: str, train_key: str | None = None, test_key: str | None = None
) -> list[ManifestPlan]:
    """What to upload and which manifests to write, from the folder's layout."""
    prefix = prefix.strip("/")
    base = f"{prefix}/" if prefix else ""
    if (root / "train").is_dir() or (root / "test").is_dir():
        return _plan_mvtec(root, base, train_key, test_key)
    if (root / "normal").is_dir() or (root / "anomaly").is_dir():
        manifest = ManifestPlan(train_key or f"{base}dataset.manifest")
        manifest.samples += [Sample(image, None) for image in _images(root / "normal")]
        for image in _images(root / "anomaly"):
            relative = image.relative_to(root / "anomaly")
            defect = anomaly_name(relative.parts[0]) if len(relative.parts) > 1 else "anomaly"
            mask = next(
                (
                    candidate
                    for candidate in (
                        (root / "masks" / relative).with_suffix(".png"),
                        image.with_name(f"{image.stem}_mask.png"),
                    )
                    if candidate.is_file()
                ),
                None,
            )
            if image.stem.endswith("_mask"):
                continue
            manifest.samples.append(Sample(image, defect, mask))
        return [manifest]
    raise LayoutError(
        f"{root} has neither train/ and test/ folders (MVTec AD layout) nor normal/ and anomaly/ folders"
    )


def _plan_mvtec(root: Path, base: str, train_key: str | None, test_key: str | None) -> list[ManifestPlan]:
    plans = []
    for split, key in (
        ("train", train_key or f"{base}train.manifest"),
        ("test", test_key or f"{base}test.manifest"),
    ):
        manifest = ManifestPlan(key)
        for folder in sorted(p for p in (root / split).glob("*") if p.is_dir()):
            defect = None if folder.name == "good" else anomaly_name(folder.name)
            for image in _images(folder):
                mask = root / "ground_truth" / folder.name / f"{image.stem}_mask.png"
                manifest.samples.append(Sample(image, defect, mask if defect and mask.is_file() else None))
        if manifest.samples:
            plans.append(manifest)
    return plans


def l4v_mask(path: Path, color: str) -> bytes:
    """A binary mask (any non-zero pixel is the defect) as an L4V mask: white, defect in `color`."""
    with Image.open(path) as mask:
        defect = mask.convert("L").point(lambda value: 255 if value > 0 else 0)
    rgb = tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))
    out = Image.new("RGB", defect.size, (255, 255, 255))
    out.paste(Image.new("RGB", defect.size, rgb), mask=defect)
    buffer = io.BytesIO()
    out.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def manifest_line(
    image_uri: str, sample: Sample, mask_uri: str | None, color: str | None, created: str
) -> str:
    anomalous = sample.anomaly_type is not None
    line: dict[str, object] = {
        "source-ref": image_uri,
        "anomaly-label": 1 if anomalous else 0,
        "anomaly-label-metadata": {
            "confidence": 1,
            "job-name": JOB_NAME,
            "class-name": "anomaly" if anomalous else "normal",
            "human-annotated": "yes",
            "creation-date": created,
            "type": "groundtruth/image-classification",
        },
    }
    if mask_uri and color:
        line["anomaly-mask-ref"] = mask_uri
        line["anomaly-mask-ref-metadata"] = {
            "internal-color-map": {
                "0": {"class-name": "BACKGROUND", "hex-color": "#ffffff", "confidence": 0.0},
                "1": {"class-name": sample.anomaly_type, "hex-color": color, "confidence": 0.0},
            },
            "type": "groundtruth/semantic-segmentation",
            "human-annotated": "yes",
            "creation-date": created,
            "job-name": JOB_NAME,
        }
    return json.dumps(line)
