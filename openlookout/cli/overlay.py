"""A DetectAnomalies answer drawn on its image, and what the picture is called.

`openlookout detect --overlay` and `make demo` (examples/walkthrough.py) both draw and name with these.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any


def overlay_name(image: Path) -> str:
    """test/dent/000.jpg -> dent_000.png: the folder too, so dent/000 and good/000 do not collide."""
    return f"{image.parent.name}_{image.stem}.png".lstrip("_")


def draw_result(image_bytes: bytes, result: dict[str, Any]) -> Any:
    """The image with the anomaly mask blended in, a legend of the classes and the verdict."""
    from PIL import Image, ImageDraw

    image = Image.open(io.BytesIO(image_bytes)).convert("RGB")
    if result.get("AnomalyMask"):
        mask = (
            Image.open(io.BytesIO(result["AnomalyMask"]))
            .convert("RGB")
            .resize(image.size, Image.Resampling.NEAREST)
        )
        # The mask's background is white: blend only the pixels painted in a class colour.
        painted = mask.convert("L").point(lambda v: 0 if v >= 250 else 255)
        image.paste(Image.blend(image, mask, 0.6), (0, 0), painted)
    band = 18
    canvas = Image.new("RGB", (max(image.width, 240), image.height + band * 2), "white")
    canvas.paste(image, (0, band * 2))
    draw = ImageDraw.Draw(canvas)
    verdict = "ANOMALY" if result["IsAnomalous"] else "normal"
    colour = "#b00000" if result["IsAnomalous"] else "#006000"
    draw.text((4, 3), f"{verdict}  confidence {result['Confidence']:.2f}", fill=colour)
    x = 4
    for anomaly in result.get("Anomalies", []):
        if anomaly["Name"] == "background":
            continue
        pixels = anomaly.get("PixelAnomaly", {})
        draw.rectangle((x, band + 4, x + 10, band + 14), fill=pixels.get("Color", "#000000"))
        label = f"{anomaly['Name']} {pixels.get('TotalPercentageArea', 0):.1%}"
        draw.text((x + 14, band + 3), label, fill="black")
        x += 14 + int(draw.textlength(label)) + 10
    return canvas
