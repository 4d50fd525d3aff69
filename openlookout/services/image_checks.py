"""Lookout for Vision's image rules, checked from an image's first bytes (pure functions)."""

from __future__ import annotations

from dataclasses import dataclass

from openlookout.ml.serving.image_header import InvalidImageError, read_header

MIN_SIDE = 64
MAX_SIDE = 4096
MAX_IMAGE_BYTES = 8 * 1024 * 1024  # "8 MB" in L4V's limits table
IMAGE_FORMATS = ("PNG", "JPEG")


class ImageRuleError(ValueError):
    """The image breaks a rule; the message completes "the image s3://... ...": e.g. "is not a PNG"."""


class NeedMoreBytes(Exception):
    """The header was cut off before the image's size; read more of the object."""


@dataclass(frozen=True)
class ImageInfo:
    format: str  # "PNG" or "JPEG"
    width: int
    height: int


def inspect_header(data: bytes, total_size: int, formats: tuple[str, ...] = IMAGE_FORMATS) -> ImageInfo:
    """Format and size from the first bytes; raises ImageRuleError or NeedMoreBytes."""
    if total_size == 0:
        raise ImageRuleError("is empty (0 bytes)")
    if total_size > MAX_IMAGE_BYTES:
        raise ImageRuleError(f"is {total_size} bytes; the maximum is 8 MB ({MAX_IMAGE_BYTES} bytes)")
    try:
        kind, width, height = read_header(data)
    except InvalidImageError:
        if len(data) < total_size:
            raise NeedMoreBytes() from None
        raise ImageRuleError(f"is not a {' or '.join(formats)} image") from None
    if kind not in formats:
        raise ImageRuleError(f"is a {kind} image, not a {' or '.join(formats)} image")
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise ImageRuleError(
            f"is {width}x{height} pixels; images must be from {MIN_SIDE}x{MIN_SIDE} "
            f"to {MAX_SIDE}x{MAX_SIDE} pixels"
        )
    return ImageInfo(str(kind), width, height)
