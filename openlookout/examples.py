"""A built-in example dataset, generated on the spot: no downloads.

Photos of a machined washer on a brushed-metal table, in MVTec AD layout (train/good,
test/good, test/<defect>, ground_truth/<defect>/<stem>_mask.png), with three kinds of defect:
scratches, dents (dark pits) and stains. Every image varies in position, rotation, lighting and
texture, so the model has to learn the part, not one picture.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

DEFECTS = ("scratch", "dent", "stain")
SIZE = 256


def _washer(rng: np.random.Generator) -> Image.Image:
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    angle = rng.uniform(0, math.pi)
    brushed = np.sin((x * math.cos(angle) + y * math.sin(angle)) / rng.uniform(1.5, 2.5))
    table = 95 + 10 * brushed + rng.normal(0, 3, (SIZE, SIZE)) + rng.uniform(-12, 12)
    cx, cy = SIZE / 2 + rng.uniform(-6, 6, 2)
    r = np.hypot(x - cx, y - cy)
    outer, inner = rng.uniform(88, 92), rng.uniform(38, 42)
    ring = (r < outer) & (r > inner)
    light = 185 + 25 * np.cos(np.arctan2(y - cy, x - cx) - rng.uniform(0, 2 * math.pi))
    grain = 6 * np.sin(r / 2.2)
    gray = np.where(ring, light + grain + rng.normal(0, 2, (SIZE, SIZE)), table)
    rgb = np.stack([gray, gray * 0.98, gray * 0.94], axis=-1)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.6))


def _defect(image: Image.Image, kind: str, rng: np.random.Generator) -> Image.Image:
    """Draws a defect on the washer ring; returns its 0/255 mask."""
    mask = Image.new("L", image.size, 0)
    draw, mask_draw = ImageDraw.Draw(image), ImageDraw.Draw(mask)
    theta = rng.uniform(0, 2 * math.pi)
    radius = rng.uniform(52, 78)
    cx, cy = SIZE / 2 + radius * math.cos(theta), SIZE / 2 + radius * math.sin(theta)
    if kind == "scratch":
        length, direction = rng.uniform(18, 30), theta + math.pi / 2 + rng.uniform(-0.5, 0.5)
        end = (cx + length * math.cos(direction), cy + length * math.sin(direction))
        draw.line([(cx, cy), end], fill=(60, 58, 55), width=2)
        mask_draw.line([(cx, cy), end], fill=255, width=4)
    elif kind == "dent":
        size = rng.uniform(5, 9)
        box = (cx - size, cy - size * 0.8, cx + size, cy + size * 0.8)
        draw.ellipse(box, fill=(45, 42, 40))
        mask_draw.ellipse(box, fill=255)
    else:
        size = rng.uniform(9, 14)
        box = (cx - size, cy - size, cx + size, cy + size)
        stain = Image.new("RGB", image.size, (150, 110, 60))
        blot = Image.new("L", image.size, 0)
        ImageDraw.Draw(blot).ellipse(box, fill=150)
        image.paste(stain, (0, 0), blot.filter(ImageFilter.GaussianBlur(2)))
        mask_draw.ellipse(box, fill=255)
    return mask


def generate(
    directory: Path,
    normal: int = 60,
    test_normal: int = 12,
    per_defect: int = 8,
    train_per_defect: int = 4,
    seed: int = 7,
) -> Path:
    """Writes the example dataset under `directory` (MVTec AD layout) and returns it.

    The training split also holds a few labelled defects of each kind, as L4V advised: they set the
    decision threshold and teach the model the defect classes' names; they never enter its memory bank.
    """
    rng = np.random.default_rng(seed)
    (directory / "train" / "good").mkdir(parents=True, exist_ok=True)
    (directory / "test" / "good").mkdir(parents=True, exist_ok=True)
    for i in range(normal):
        _washer(rng).save(directory / "train" / "good" / f"{i:03d}.jpg", quality=92)
    for i in range(test_normal):
        _washer(rng).save(directory / "test" / "good" / f"{i:03d}.jpg", quality=92)
    for kind in DEFECTS:
        (directory / "ground_truth" / kind).mkdir(parents=True, exist_ok=True)
        for split, count, stem in (("train", train_per_defect, "t{:03d}"), ("test", per_defect, "{:03d}")):
            (directory / split / kind).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                image = _washer(rng)
                mask = _defect(image, kind, rng)
                name = stem.format(i)
                image.save(directory / split / kind / f"{name}.jpg", quality=92)
                mask.convert("1").save(directory / "ground_truth" / kind / f"{name}_mask.png")
    return directory


def main(argv: list[str] | None = None) -> int:
    """`python -m openlookout.examples DIR`: write the example dataset, e.g. at benchmark size."""
    import argparse

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("directory", type=Path)
    parser.add_argument("--normal", type=int, default=60, help="normal training images")
    parser.add_argument("--test-normal", type=int, default=12, help="normal test images")
    parser.add_argument("--per-defect", type=int, default=8, help="test images per defect kind")
    parser.add_argument(
        "--train-per-defect", type=int, default=4, help="labelled training images per defect kind"
    )
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    root = generate(
        args.directory, args.normal, args.test_normal, args.per_defect, args.train_per_defect, args.seed
    )
    print(summary(root, args.normal, args.test_normal, args.per_defect, args.train_per_defect))
    return 0


def summary(root: Path, normal: int, test_normal: int, per_defect: int, train_per_defect: int) -> str:
    """washers: train/good 20, train/{scratch,dent,stain} 1 each, test/good 4, ... (what was written)"""
    kinds = "{" + ",".join(DEFECTS) + "}"
    return (
        f"{root}: train/good {normal}, train/{kinds} {train_per_defect} each, test/good {test_normal}, "
        f"test/{kinds} {per_defect} each, masks in ground_truth/"
    )


if __name__ == "__main__":
    raise SystemExit(main())
