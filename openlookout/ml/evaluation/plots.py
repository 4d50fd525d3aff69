"""Pictures of an evaluation (Pillow only): labelled overlays of test images, ROC/PR curves and the
score histogram. The evaluation report (report.py) and evaluate() draw with these."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

from ..serving.images import ImageInput, open_image
from ..serving.masks import hex_to_rgb
from .results import ImageResult, outcome

if TYPE_CHECKING:
    from ..serving.inference import DetectionResult


def save_png(img: Image.Image, p: Path) -> Path:
    img.save(p)
    return p


def safe_name(ref: str) -> str:
    parts = Path(ref).with_suffix("").parts[-2:]
    return "_".join(p for p in parts if p).replace(" ", "_")[:80] or "image"


# ---------------------------------------------------------------------------------------- drawing
def heat_colors(v: np.ndarray) -> np.ndarray:
    """A simple blue-cyan-yellow-red colour map for values in 0-1 (uint8 RGB)."""
    v = np.clip(v, 0, 1)
    r = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return (np.stack([r, g, b], -1) * 255).astype(np.uint8)


def font(size: int = 13) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled scalable font: readable at any size, nothing to install."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def png_bytes(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    # The report's pictures: fast zlib (level 1 encodes an overlay 3-4x faster than the default 6).
    img.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _outline(gt: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """A mask (mode L) of the ground truth's boundary, 2 px wide, at `size`."""
    region = Image.fromarray(gt.astype(np.uint8) * 255).resize(size, Image.Resampling.NEAREST)
    return ImageChops.subtract(
        region.filter(ImageFilter.MaxFilter(3)), region.filter(ImageFilter.MinFilter(3))
    )


def labelled_overlay(
    src: ImageInput,
    r: DetectionResult,
    gt: np.ndarray | None,
    truth: bool,
    ref: str,
    threshold: float,
    height: int = 220,
) -> Image.Image:
    """The image with its ground-truth outline | prediction (heat map and mask) | a caption that says
    right or wrong, in a frame coloured by it."""
    img = open_image(src)
    w = max(1, round(img.width * height / img.height))
    base = img.resize((w, height))
    left = base.copy()
    if gt is not None and gt.any():
        left.paste(Image.new("RGB", (w, height), (255, 215, 0)), (0, 0), _outline(gt, (w, height)))
    amap = np.asarray(Image.fromarray(r.anomaly_map, mode="F").resize((w, height)))
    lo, hi = float(amap.min()), float(max(amap.max(), r.raw_score))
    heat = Image.blend(base, Image.fromarray(heat_colors((amap - lo) / max(hi - lo, 1e-6))), 0.45)
    # The mask's pixels as the PNG would decode them, without encoding one.
    mask = Image.frombytes("RGB", (r.width, r.height), r.mask_rgb888()).resize((w, height))
    painted = mask.convert("L").point(lambda v: 0 if v >= 250 else 255)
    right = base.copy()
    right.paste(Image.blend(base, mask, 0.65), (0, 0), painted)
    if gt is not None and gt.any():
        right.paste(Image.new("RGB", (w, height), (255, 215, 0)), (0, 0), _outline(gt, (w, height)))
    correct = r.is_anomalous == truth
    frame = (0, 128, 0) if correct else (200, 0, 0)
    band, pad = 68, 4
    out = Image.new("RGB", (3 * w + 4 * pad, height + band + pad), frame)
    out.paste(Image.new("RGB", (3 * w + 2 * pad, band - pad), "white"), (pad, pad))
    for k, panel in enumerate((left, heat, right)):
        out.paste(panel, (pad + k * (w + pad), band))
    d = ImageDraw.Draw(out)
    verdict = ("RIGHT: " if correct else "WRONG: ") + outcome(truth, r.is_anomalous)
    classes = ", ".join(a["Name"] for a in r.anomalies[1:]) or "none"
    d.text((pad + 4, pad + 2), verdict, fill=frame, font=font(15))
    said = "anomaly" if r.is_anomalous else "normal"
    lines = (
        f"truth {'anomaly' if truth else 'normal'}, predicted {said}",
        f"score {r.raw_score:.2f} (threshold {threshold:.2f}), confidence {r.confidence:.2f}",
        f"classes found: {classes}",
    )
    for k, line in enumerate(lines):
        d.text((pad + 4, pad + 22 + 14 * k), _fit(d, line, 3 * w), fill=(0, 0, 0), font=font(11))
    name = safe_name(ref)
    d.text(
        (3 * w + 2 * pad - d.textlength(name, font=font(11)), pad + 4), name, fill=(90, 90, 90), font=font(11)
    )
    return out


def _fit(d: ImageDraw.ImageDraw, text: str, width: float) -> str:
    """The text, shortened with an ellipsis until it fits `width` pixels."""
    while len(text) > 4 and d.textlength(text, font=font(11)) > width:
        text = text[:-5] + "..."
    return text


def plot_curve(
    x: np.ndarray,
    y: np.ndarray,
    title: str,
    xlabel: str,
    ylabel: str,
    note: str,
    point: tuple[float, float] | None = None,
    size: int = 420,
) -> Image.Image:
    """A curve with labelled axes; `point` (the model's threshold) is marked and labelled."""
    img = Image.new("RGB", (size, size), "white")
    d = ImageDraw.Draw(img)
    x0, y0, x1, y1 = 64, 34, size - 16, size - 50
    small, big = font(11), font(14)
    frame = (x0 - 4, y0 - 4, x1 + 4, y1 + 4)  # 4 px outside the data: a curve along 0 or 1 stays visible
    d.rectangle(frame, outline=(0, 0, 0))
    for t in np.linspace(0, 1, 6):
        px = x0 + t * (x1 - x0)
        py = y1 - t * (y1 - y0)
        d.line((px, y0, px, y1), fill=(230, 230, 230))
        d.line((x0, py, x1, py), fill=(230, 230, 230))
        d.line((px, y1, px, y1 + 4), fill=(0, 0, 0))
        d.line((x0 - 4, py, x0, py), fill=(0, 0, 0))
        d.text((px, y1 + 6), f"{t:.1f}", fill=(0, 0, 0), font=small, anchor="ma")
        d.text((x0 - 6, py), f"{t:.1f}", fill=(0, 0, 0), font=small, anchor="rm")
    d.rectangle(frame, outline=(0, 0, 0))
    pts = [(x0 + float(a) * (x1 - x0), y1 - float(b) * (y1 - y0)) for a, b in zip(x, y, strict=True)]
    if len(pts) > 1:
        d.line(pts, fill=hex_to_rgb("#1F77B4"), width=2)
    if point is not None:
        px, py = x0 + point[0] * (x1 - x0), y1 - point[1] * (y1 - y0)
        d.ellipse((px - 5, py - 5, px + 5, py + 5), outline=(214, 39, 40), width=2)
        label = f"threshold ({point[0]:.2f}, {point[1]:.2f})"
        anchor = "ra" if px > (x0 + x1) / 2 else "la"
        d.text(
            (px + (-8 if anchor == "ra" else 8), py + 6), label, fill=(214, 39, 40), font=small, anchor=anchor
        )
    d.text((x0, 8), f"{title}   {note}", fill=(0, 0, 0), font=big)
    d.text(((x0 + x1) / 2, size - 8), xlabel, fill=(0, 0, 0), font=small, anchor="md")
    # The y label, drawn on its own strip and turned upright so it is never clipped.
    strip = Image.new("RGB", (y1 - y0, 16), "white")
    ImageDraw.Draw(strip).text(((y1 - y0) / 2, 8), ylabel, fill=(0, 0, 0), font=small, anchor="mm")
    img.paste(strip.rotate(90, expand=True), (6, y0))
    return img


def plot_scores(images: list[ImageResult], threshold: float, size: tuple[int, int] = (560, 0)) -> Image.Image:
    """One histogram of anomaly scores (0 to 1, the console's scale) per class (normal, then each
    anomaly class), the threshold on each."""
    groups: dict[str, list[float]] = {"normal": []}
    for r in images:
        groups.setdefault((r.class_name or "anomaly") if r.label else "normal", []).append(r.anomaly_score)
    row, top_margin, left, right = 70, 30, 110, 14
    w = size[0]
    h = top_margin + row * len(groups) + 34
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    every = np.array([r.anomaly_score for r in images] + [threshold, 0.0, 1.0])
    lo, hi = float(every.min()), float(every.max())
    hi = hi if hi > lo else lo + 1
    bins, x0, x1 = 40, left, w - right
    bw = (x1 - x0) / bins
    tx = x0 + (threshold - lo) / (hi - lo) * (x1 - x0)
    for k, (name, values) in enumerate(groups.items()):
        y0, y1 = top_margin + k * row + 6, top_margin + (k + 1) * row
        counts = np.histogram(np.array(values), bins=bins, range=(lo, hi))[0]
        peak = max(1, int(counts.max()) if counts.size else 1)
        color = (44, 160, 44) if name == "normal" else (214, 39, 40)
        for i, n in enumerate(counts):
            if n:
                d.rectangle((x0 + i * bw, y1 - n / peak * (y1 - y0), x0 + (i + 1) * bw - 1, y1), fill=color)
        d.line((x0, y1, x1, y1), fill=(0, 0, 0))
        d.text((x0 - 8, (y0 + y1) / 2), f"{name} ({len(values)})", fill=(0, 0, 0), font=font(12), anchor="rm")
    d.line((tx, top_margin, tx, h - 34), fill=(0, 0, 0), width=2)
    d.text((tx, h - 30), f"threshold {threshold:.2f}", fill=(0, 0, 0), font=font(11), anchor="ma")
    d.text((x0, h - 16), f"{lo:.2f}", fill=(0, 0, 0), font=font(11))
    d.text((x1, h - 16), f"{hi:.2f}", fill=(0, 0, 0), font=font(11), anchor="ra")
    d.text(
        (8, 8),
        "Anomaly score per class (0 to 1; right of the line = anomalous)",
        fill=(0, 0, 0),
        font=font(13),
    )
    return img
