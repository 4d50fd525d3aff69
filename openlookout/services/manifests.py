"""SageMaker Ground Truth manifest lines, as Lookout for Vision reads them (pure functions).

One JSON object per line. The image is `source-ref`; the image-level label is the `class-name` of
the one `<label>-metadata` object whose type is image classification (`normal` or `anomaly`, any
case; anything else leaves the image unlabeled, as in L4V). Segmentation masks are the other
`*-ref` keys whose `*-ref-metadata` has an `internal-color-map`. See docs/datasets.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from openlookout.core.s3_names import location_problem

SOURCE_REF = "source-ref"
MAX_ENTRY_CHARS = 8192  # the service model's DatasetEntry maximum: an entry must round-trip
MAX_ANOMALY_LABELS_PER_IMAGE = 20  # L4V limit per mask image
CLASSIFICATION_TYPE = "groundtruth/image-classification"
SEGMENTATION_TYPE = "groundtruth/semantic-segmentation"
BACKGROUND_CLASS = "BACKGROUND"
BACKGROUND_COLOR = "#ffffff"

NORMAL = "normal"
ANOMALY = "anomaly"

_S3_URI = re.compile(r"s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])/(?P<key>.+)", re.DOTALL)
_HEX_COLOR = re.compile(r"#[0-9a-fA-F]{6}")


class ManifestLineError(ValueError):
    """A line that cannot become a dataset entry; `reason` completes "Manifest line N: ..."."""

    def __init__(self, line_number: int, reason: str) -> None:
        super().__init__(f"line {line_number}: {reason}")
        self.line_number = line_number
        self.reason = reason


@dataclass(frozen=True)
class S3Ref:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class MaskRef:
    attribute: str  # e.g. "anomaly-mask-ref"
    location: S3Ref
    colors: tuple[tuple[str, str], ...]  # ("#rrggbb" in lower case, anomaly class) but the background

    @property
    def anomaly_types(self) -> tuple[str, ...]:
        """The color map's class names other than the background, each once."""
        return tuple(dict.fromkeys(name for _color, name in self.colors))


@dataclass(frozen=True)
class ManifestEntry:
    line_number: int
    image: S3Ref
    anomaly_class: str | None  # NORMAL, ANOMALY, or None for an unlabeled image
    masks: tuple[MaskRef, ...]
    entry: str  # the line as ListDatasetEntries returns it (label value normalised to 0/1)

    @property
    def source_ref(self) -> str:
        return self.image.uri

    @property
    def labeled(self) -> bool:
        return self.anomaly_class is not None


def parse_s3_uri(value: Any) -> S3Ref | None:
    if not isinstance(value, str):
        return None
    match = _S3_URI.fullmatch(value)
    if match is None:
        return None
    return S3Ref(match["bucket"], match["key"])


def parse_line(line_number: int, text: str) -> ManifestEntry:
    """Parses and checks one manifest line; raises ManifestLineError naming the problem."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ManifestLineError(
            line_number, f"the line is not valid JSON ({error.msg} at column {error.colno})."
        ) from None
    if not isinstance(data, dict):
        raise ManifestLineError(line_number, "the line is not a JSON object.")
    if SOURCE_REF not in data:
        raise ManifestLineError(line_number, "the line has no source-ref.")
    image = _location(line_number, data[SOURCE_REF], "source-ref must be an S3 URI", "the source-ref")

    label_attribute, anomaly_class = _image_label(line_number, data)
    masks = tuple(_masks(line_number, data))
    for mask in masks:
        if len(mask.anomaly_types) > MAX_ANOMALY_LABELS_PER_IMAGE:
            raise ManifestLineError(
                line_number,
                f"{mask.attribute}-metadata has {len(mask.anomaly_types)} anomaly labels; "
                f"an image can have at most {MAX_ANOMALY_LABELS_PER_IMAGE}.",
            )
        if mask.location.bucket != image.bucket:
            raise ManifestLineError(
                line_number,
                f"the mask {mask.location.uri} is not in the image's bucket {image.bucket}.",
            )

    if label_attribute is not None and anomaly_class is not None:
        # L4V ignores the label value on input and writes 1 for anomaly, 0 for normal on output.
        data[label_attribute] = 1 if anomaly_class == ANOMALY else 0
    entry = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    if len(entry) > MAX_ENTRY_CHARS:
        raise ManifestLineError(
            line_number, f"the line has {len(entry)} characters; an entry can have at most {MAX_ENTRY_CHARS}."
        )
    return ManifestEntry(line_number, image, anomaly_class, masks, entry)


def _image_label(line_number: int, data: dict[str, Any]) -> tuple[str | None, str | None]:
    """The label attribute and the image's class (None when unlabeled)."""
    candidates: list[tuple[str, dict[str, Any]]] = []
    for key in data:
        if key == SOURCE_REF or key.endswith("-metadata") or key.endswith("-ref"):
            continue
        metadata = data.get(f"{key}-metadata")
        if metadata is None:
            continue
        if not isinstance(metadata, dict):
            raise ManifestLineError(line_number, f"{key}-metadata must be a JSON object.")
        if "class-name" in metadata and metadata.get("type") != SEGMENTATION_TYPE:
            candidates.append((key, metadata))
    if not candidates:
        return None, None
    # Prefer the attribute that declares itself a classification label, as Ground Truth writes it.
    candidates.sort(key=lambda candidate: candidate[1].get("type") != CLASSIFICATION_TYPE)
    key, metadata = candidates[0]
    class_name = metadata["class-name"]
    if not isinstance(class_name, str):
        raise ManifestLineError(line_number, f"class-name in {key}-metadata must be a string.")
    normalised = class_name.strip().lower()
    return key, normalised if normalised in (NORMAL, ANOMALY) else None


def _masks(line_number: int, data: dict[str, Any]) -> list[MaskRef]:
    masks = []
    for key, value in data.items():
        if key == SOURCE_REF or not key.endswith("-ref"):
            continue
        metadata = data.get(f"{key}-metadata")
        if metadata is None:
            continue  # a reference that is not a mask (no color map): kept in the entry, not checked
        if not isinstance(metadata, dict):
            raise ManifestLineError(line_number, f"{key}-metadata must be a JSON object.")
        color_map = metadata.get("internal-color-map")
        if color_map is None:
            if metadata.get("type") == SEGMENTATION_TYPE:
                raise ManifestLineError(line_number, f"{key}-metadata has no internal-color-map.")
            continue
        location = _location(line_number, value, f"{key} must be the S3 URI of a mask", "the mask")
        masks.append(MaskRef(key, location, _mask_colors(line_number, key, color_map)))
    return masks


def _mask_colors(line_number: int, key: str, color_map: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(color_map, dict) or not color_map:
        raise ManifestLineError(
            line_number, f"internal-color-map of {key}-metadata must be a non-empty object."
        )
    colors: list[tuple[str, str]] = []
    for index, color in color_map.items():
        where = f'internal-color-map entry "{index}" of {key}-metadata'
        if not isinstance(color, dict):
            raise ManifestLineError(line_number, f"{where} must be a JSON object.")
        class_name, hex_color = color.get("class-name"), color.get("hex-color")
        if not isinstance(class_name, str) or not class_name.strip():
            raise ManifestLineError(line_number, f"{where} has no class-name.")
        if not isinstance(hex_color, str) or not _HEX_COLOR.fullmatch(hex_color):
            raise ManifestLineError(line_number, f"{where} has no hex-color of the form #rrggbb.")
        # Entry "0" is documented as BACKGROUND/#ffffff, but AWS's own getting-started manifests
        # give "0" to a defect class: only the name or the white colour make an entry background.
        if class_name.strip().upper() == BACKGROUND_CLASS or hex_color.lower() == BACKGROUND_COLOR:
            continue
        colors.append((hex_color.lower(), class_name))
    return tuple(colors)


def _location(line_number: int, value: Any, expected: str, what: str) -> S3Ref:
    """An image's or a mask's S3 location, refused (naming the line) when it is not one or is unsafe."""
    location = parse_s3_uri(value)
    if location is None:
        raise ManifestLineError(line_number, f"{expected} (s3://bucket/key), not {_show(value)}.")
    problem = location_problem(location.bucket, location.key)
    if problem:
        raise ManifestLineError(line_number, f"{what} {location.uri} {problem}.")
    return location


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def numbered_lines(chunks: Iterable[bytes]) -> Iterator[tuple[int, str]]:
    """Numbered non-blank lines of a JSON Lines stream (the numbers count blank lines too)."""
    number = 0
    pending = b""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            number += 1
            text = _decode(number, raw)
            if text:
                yield number, text
    number += 1
    text = _decode(number, pending)
    if text:
        yield number, text


def _decode(number: int, raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig" if number == 1 else "utf-8").strip()
    except UnicodeDecodeError:
        raise ManifestLineError(number, "the line is not UTF-8 text.") from None
