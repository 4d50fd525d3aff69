"""Image decoding and preprocessing shared by training and serving (Pillow + numpy only)."""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image, UnidentifiedImageError

ImageInput = str | os.PathLike[str] | bytes | bytearray | memoryview | Image.Image | np.ndarray

# Guard against decompression bombs while still accepting L4V's largest images (4096 x 4096 edge).
MAX_PIXELS = 4096 * 4096 * 2


class InvalidImageError(ValueError):
    """The bytes are not a decodable PNG/JPEG image (maps to L4V's ValidationException)."""


def open_image(src: ImageInput) -> Image.Image:
    """Decode any supported input into an RGB PIL image (grayscale is replicated to 3 channels)."""
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
            img.load()
        except InvalidImageError:
            raise
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            raise InvalidImageError(f"cannot decode image: {e}") from e
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


def to_model_input(img: Image.Image, size: int) -> np.ndarray:
    """Resize to size x size and return a float32 CHW array of 0-255 pixel values.

    Normalisation happens inside the ONNX graph, so the serving side needs nothing but this.
    """
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
    arr = np.asarray(img, dtype=np.float32)
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def load_mask(src: ImageInput | None, size: tuple[int, int]) -> np.ndarray | None:
    """Binary mask (bool H x W at the given (width, height)) from a PIL image, array or file."""
    if src is None:
        return None
    if isinstance(src, np.ndarray):
        m = src
        if m.ndim == 3:
            m = m.max(axis=2)
        img = Image.fromarray((m > 0).astype(np.uint8) * 255)
    elif isinstance(src, Image.Image):
        img = src
    else:
        try:
            img = Image.open(
                io.BytesIO(bytes(src)) if isinstance(src, (bytes, bytearray, memoryview)) else src
            )
            img.load()
        except (UnidentifiedImageError, OSError) as e:
            raise InvalidImageError(f"cannot decode mask: {e}") from e
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # L4V masks: transparent or white background, coloured anomalies.
        rgba = np.asarray(img.convert("RGBA"))
        fg = (
            (rgba[..., 3] > 0) & ~np.all(rgba[..., :3] >= 250, axis=-1) & ~np.all(rgba[..., :3] == 0, axis=-1)
        )
    else:
        rgb = np.asarray(img.convert("RGB"))
        if img.mode in ("1", "L", "I", "I;16", "F"):
            fg = rgb[..., 0] > 127
        else:
            # Colour masks: background is white or black, everything else is an anomaly.
            fg = ~np.all(rgb >= 250, axis=-1) & ~np.all(rgb <= 5, axis=-1)
    out = Image.fromarray(fg.astype(np.uint8) * 255)
    if out.size != size:
        out = out.resize(size, Image.Resampling.NEAREST)
    return np.asarray(out) > 127
