"""Small generated images for the engine tests: a textured surface with drawn-in defects."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

SIZE = 128


def texture(seed: int, size: tuple[int, int] = (SIZE, SIZE)) -> Image.Image:
    """Fine vertical grain plus noise: a machined metal-like surface, grayscale."""
    rng = np.random.default_rng(seed)
    w, h = size
    x = np.arange(w)[None, :]
    grain = 20 * np.sin(x * 0.9 + rng.uniform(0, 6.28)) + 10 * np.sin(x * 0.23 + rng.uniform(0, 6.28))
    img = 120 + grain + rng.normal(0, 6, (h, w))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "L")


def with_defect(img: Image.Image, kind: str, seed: int) -> tuple[Image.Image, Image.Image]:
    """Draw a defect; returns (image, 0/255 mask)."""
    rng = np.random.default_rng(1000 + seed)
    img = img.convert("RGB")
    w, h = img.size
    mask = Image.new("L", (w, h), 0)
    d, md = ImageDraw.Draw(img), ImageDraw.Draw(mask)
    cx, cy = int(rng.integers(w // 4, 3 * w // 4)), int(rng.integers(h // 4, 3 * h // 4))
    if kind == "spot":
        r = int(rng.integers(9, 14))
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(20, 20, 20))
        md.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    else:  # scratch: a bright diagonal line
        dx = int(rng.integers(20, 35))
        d.line((cx - dx, cy - dx, cx + dx, cy + dx), fill=(250, 250, 250), width=4)
        md.line((cx - dx, cy - dx, cx + dx, cy + dx), fill=255, width=4)
    return img, mask


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(img: Image.Image, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture(scope="session")
def small_config():  # type: ignore[no-untyped-def]
    from openlookout.ml.patchcore.config import EngineConfig

    return EngineConfig(input_size=128, bank_size=512, coreset_ratio=0.25, smoothing_sigma=2.0, batch_size=8)


@pytest.fixture(scope="session")
def normals() -> list[bytes]:
    # 24: enough for the supervised head's cross-validation to hold out 6 normals.
    return [png_bytes(texture(i)) for i in range(24)]


@pytest.fixture(scope="session")
def labeled() -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for i in range(4):
        for kind in ("spot", "scratch"):
            img, mask = with_defect(texture(100 + i), kind, i)
            out.append({"image": img, "mask": mask, "class_name": kind})
    return out


@pytest.fixture(scope="session")
def trained(small_config, normals, labeled, tmp_path_factory):  # type: ignore[no-untyped-def]
    """One model with two named defect classes, exported once for the whole session."""
    from openlookout.ml.patchcore.training import train

    logs: list[str] = []
    res = train(normals, anomalies=labeled, config=small_config, progress=logs.append)
    d: Path = tmp_path_factory.mktemp("model")
    onnx_path, manifest_path = res.export(d)
    return res, d, onnx_path, manifest_path, logs
