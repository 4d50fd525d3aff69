"""Image decoding and preprocessing shared by training and serving (Pillow + numpy only)."""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from .image_header import InvalidImageError, read_header

ImageInput = str | os.PathLike[str] | bytes | bytearray | memoryview | Image.Image | np.ndarray
# The graph's input size: a side for a square, or (width, height).
Size = int | tuple[int, int]

# Guard against decompression bombs while still accepting L4V's largest images (4096 x 4096 edge).
MAX_PIXELS = 4096 * 4096 * 2


# How an image becomes the graph's input. Each model's manifest records its rule (input.preprocessing),
# so a model is always served exactly the way it was trained.
# Models written before the rule existed: full decode, one bilinear resize to the input size.
PREPROCESS_BILINEAR = "bilinear"
# The default since: JPEGs decode at the smallest 1/2, 1/4 or 1/8 scale whose sides stay at or above the
# input size (libjpeg's DCT scaling), then a box reduction by the largest integer factor that keeps the
# sides at or above it, then the bilinear resize. A 2048 px JPEG is decoded and preprocessed in 7.4 ms
# instead of 30.6 ms (docs/engine.md #61); pixels differ from the old rule by about half a grey level.
PREPROCESS_FAST = "jpeg-draft+reduce+bilinear"
PREPROCESSING = (PREPROCESS_BILINEAR, PREPROCESS_FAST)


def _wh(size: Size) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def image_size(src: ImageInput) -> tuple[int, int]:
    """(width, height) of an image, read from its header only (no pixel decode)."""
    if isinstance(src, Image.Image):
        return src.size
    if isinstance(src, np.ndarray):
        return int(src.shape[1]), int(src.shape[0])
    header = read_header(src)
    return header.width, header.height


def _decode(src: ImageInput, draft_size: Size | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """Decode into an RGB PIL image (grayscale is replicated to 3 channels); also the original (w, h).

    With draft_size, a JPEG may decode at a reduced scale (never below draft_size on either side).
    """
    if isinstance(src, Image.Image):
        img = src
    elif isinstance(src, np.ndarray):
        arr = src
        if arr.dtype != np.uint8:
            arr = np.clip(arr, 0, 255).astype(np.uint8)
        img = Image.fromarray(arr)
    else:
        if isinstance(src, (bytes, bytearray, memoryview)):
            data = bytes(src)
            if not data:
                raise InvalidImageError("empty image")
            fp: io.BytesIO | str | os.PathLike = io.BytesIO(data)
        else:
            fp = src
        try:
            img = Image.open(fp)
            if img.width * img.height > MAX_PIXELS:
                raise InvalidImageError(f"image too large: {img.width}x{img.height}")
            original = img.size
            if draft_size and img.format == "JPEG":
                img.draft(None, _wh(draft_size))
            img.load()
        except InvalidImageError:
            raise
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            raise InvalidImageError(f"cannot decode image: {e}") from e
        return _rgb(img), original
    return _rgb(img), img.size


def _rgb(img: Image.Image) -> Image.Image:
    if img.mode != "RGB":
        if img.mode in ("RGBA", "LA", "P", "PA") or "transparency" in img.info:
            # Composite transparent pixels on white so they are not read as black.
            rgba = img.convert("RGBA")
            bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            img = Image.alpha_composite(bg, rgba).convert("RGB")
        elif img.mode in ("I;16", "I", "F"):
            a = np.asarray(img, dtype=np.float32)
            lo, hi = float(a.min()), float(a.max())
            a = (a - lo) * (255.0 / max(hi - lo, 1e-6))
            img = Image.fromarray(a.astype(np.uint8)).convert("RGB")
        else:
            img = img.convert("RGB")
    return img


def open_image(src: ImageInput) -> Image.Image:
    """Decode any supported input, at full size, into an RGB PIL image (grayscale replicated)."""
    return _decode(src)[0]


def to_model_input(img: Image.Image, size: Size, preprocessing: str = PREPROCESS_FAST) -> np.ndarray:
    """Resize to size (a side, or (width, height)) and return a float32 CHW array of 0-255 pixels.

    Normalisation happens inside the ONNX graph, so the serving side needs nothing but this.
    """
    if preprocessing not in PREPROCESSING:
        raise ValueError(f"unknown preprocessing {preprocessing!r}; one of {PREPROCESSING}")
    wh = _wh(size)
    if img.size != wh:
        # reducing_gap=1: reduce() by floor(scale) first (a box filter), then the bilinear resize.
        gap = 1.0 if preprocessing == PREPROCESS_FAST else None
        img = img.resize(wh, Image.Resampling.BILINEAR, reducing_gap=gap)
    arr = np.asarray(img, dtype=np.float32)
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def model_input(
    src: ImageInput, size: Size, preprocessing: str = PREPROCESS_FAST
) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode and preprocess one image for the graph: (CHW float32 pixels, original (width, height))."""
    fast = preprocessing == PREPROCESS_FAST
    img, original = _decode(src, draft_size=size if fast else None)
    return to_model_input(img, size, preprocessing), original
