"""A built-in example dataset, generated on the spot: no downloads.

Photos of a machined washer on a brushed-metal table, in MVTec AD layout (train/good,
test/good, test/<defect>, ground_truth/<defect>/<stem>_mask.png), with three kinds of defect:
scratches, dents (dark pits) and stains. Every image varies in position, rotation, lighting and
texture, so the model has to learn the part, not one picture.

`--product parts` writes another product in the same layout: a flat bracket (two holes of different
sizes and a notch, so no rotation maps it onto itself) lying at any angle, with scratches, chipped
edges and stains. A washer looks the same at every angle; the bracket does not, so this set asks
whether the model takes a part's pose for a defect.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

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


# ---------------------------------------------------------------- rotated parts (`--product parts`)
PART_DEFECTS = ("scratch", "chip", "stain")
# The bracket in its own frame (pixels, centred on the origin): body half-sizes, holes (x, y, r), notch box.
PART_HALF = (74.0, 42.0)
PART_HOLES = ((-40.0, 0.0, 14.0), (36.0, -18.0, 7.0))
PART_NOTCH = (52.0, 22.0, 75.0, 43.0)


def _table(rng: np.random.Generator) -> np.ndarray:
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    angle = rng.uniform(0, math.pi)
    brushed = np.sin((x * math.cos(angle) + y * math.sin(angle)) / rng.uniform(1.5, 2.5))
    return 70 + 8 * brushed + rng.normal(0, 3, (SIZE, SIZE)) + rng.uniform(-10, 10)


def _on_part(rng: np.random.Generator, margin: float) -> tuple[float, float]:
    """A point of the bracket's body, at least `margin` from its edges, holes and notch."""
    while True:
        x, y = rng.uniform(-PART_HALF[0] + margin, PART_HALF[0] - margin), rng.uniform(-30, 30)
        clear = all(math.hypot(x - hx, y - hy) > r + margin for hx, hy, r in PART_HOLES)
        if clear and not (x > PART_NOTCH[0] - margin and y > PART_NOTCH[1] - margin):
            return x, y


def _part_layers(rng: np.random.Generator, kind: str | None) -> tuple[Image.Image, Image.Image, Image.Image]:
    """(grey level, opacity, defect mask) of the bracket drawn in its own frame, twice the output size."""
    s, c = 2, SIZE  # supersampled, centred on (c, c)
    shade, alpha, mask = (
        Image.new("L", (2 * c, 2 * c), 0),
        Image.new("L", (2 * c, 2 * c), 0),
        Image.new("L", (2 * c, 2 * c), 0),
    )
    body = [(c + s * x, c + s * y) for x, y in ((-PART_HALF[0], -PART_HALF[1]), (PART_HALF[0], PART_HALF[1]))]
    ImageDraw.Draw(alpha).rounded_rectangle(body, radius=s * 10, fill=255)
    holes_and_notch = ImageDraw.Draw(alpha)
    for x, y, r in PART_HOLES:
        holes_and_notch.ellipse([c + s * (x - r), c + s * (y - r), c + s * (x + r), c + s * (y + r)], fill=0)
    x0, y0, x1, y1 = PART_NOTCH
    holes_and_notch.rectangle([c + s * x0, c + s * y0, c + s * x1, c + s * y1], fill=0)
    ImageDraw.Draw(shade).rectangle([0, 0, 2 * c, 2 * c], fill=int(rng.uniform(170, 195)))
    draw, mask_draw = ImageDraw.Draw(shade), ImageDraw.Draw(mask)
    if kind == "scratch":
        x, y = _on_part(rng, 8)
        direction, length = rng.uniform(0, 2 * math.pi), rng.uniform(14, 24)
        end = (c + s * (x + length * math.cos(direction)), c + s * (y + length * math.sin(direction)))
        draw.line([(c + s * x, c + s * y), end], fill=80, width=2 * s)
        mask_draw.line([(c + s * x, c + s * y), end], fill=255, width=4 * s)
    elif kind == "chip":
        # A bite out of a long edge: the table shows through where metal was.
        x, r = rng.uniform(-50, 30), rng.uniform(6, 9)
        y = PART_HALF[1] * (1 if rng.uniform() < 0.5 else -1)
        box = [c + s * (x - r), c + s * (y - r), c + s * (x + r), c + s * (y + r)]
        mask_draw.ellipse(box, fill=255)
        mask = ImageChops.darker(mask, alpha)  # the defect is the metal that went missing
        ImageDraw.Draw(alpha).ellipse(box, fill=0)
    elif kind == "stain":
        x, y = _on_part(rng, 12)
        r = rng.uniform(7, 11)
        box = [c + s * (x - r), c + s * (y - r), c + s * (x + r), c + s * (y + r)]
        draw.ellipse(box, fill=120)
        mask_draw.ellipse(box, fill=255)
    return shade, alpha, mask


def _part(rng: np.random.Generator, kind: str | None = None) -> tuple[Image.Image, Image.Image]:
    """The bracket at a random angle and place on a brushed table: (RGB image, 0/255 defect mask)."""
    shade, alpha, mask = _part_layers(rng, kind)
    angle = rng.uniform(0, 360)
    shift = tuple(2 * v for v in rng.uniform(-14, 14, 2))
    layers = [
        layer.rotate(angle, Image.Resampling.BILINEAR, translate=shift).resize(
            (SIZE, SIZE), Image.Resampling.BOX
        )
        for layer in (shade, alpha, mask)
    ]
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    light = 18 * np.cos(np.arctan2(y - SIZE / 2, x - SIZE / 2) - rng.uniform(0, 2 * math.pi))
    metal = np.asarray(layers[0], np.float32) + light + rng.normal(0, 2.5, (SIZE, SIZE))
    cover = np.asarray(layers[1], np.float32) / 255
    gray = cover * metal + (1 - cover) * _table(rng)
    rgb = np.stack([gray, gray * 0.98, gray * 0.95], axis=-1)
    image = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.6))
    defect = Image.fromarray(((np.asarray(layers[2]) > 64) * 255).astype(np.uint8))
    return image, defect


def _washer_with(rng: np.random.Generator, kind: str | None) -> tuple[Image.Image, Image.Image | None]:
    image = _washer(rng)
    return image, None if kind is None else _defect(image, kind, rng)


# What each product draws: (defect kinds, a function from (rng, kind or None) to (image, mask)).
PRODUCTS = {"washers": (DEFECTS, _washer_with), "parts": (PART_DEFECTS, _part)}


def generate(
    directory: Path,
    normal: int = 60,
    test_normal: int = 12,
    per_defect: int = 8,
    train_per_defect: int = 4,
    seed: int = 7,
    product: str = "washers",
) -> Path:
    """Writes the example dataset under `directory` (MVTec AD layout) and returns it.

    The training split also holds a few labelled defects of each kind, as L4V advised: they set the
    decision threshold and teach the model the defect classes' names; they never enter its memory bank.
    """
    rng = np.random.default_rng(seed)
    kinds, draw = PRODUCTS[product]
    (directory / "train" / "good").mkdir(parents=True, exist_ok=True)
    (directory / "test" / "good").mkdir(parents=True, exist_ok=True)
    for i in range(normal):
        draw(rng, None)[0].save(directory / "train" / "good" / f"{i:03d}.jpg", quality=92)
    for i in range(test_normal):
        draw(rng, None)[0].save(directory / "test" / "good" / f"{i:03d}.jpg", quality=92)
    for kind in kinds:
        (directory / "ground_truth" / kind).mkdir(parents=True, exist_ok=True)
        for split, count, stem in (("train", train_per_defect, "t{:03d}"), ("test", per_defect, "{:03d}")):
            (directory / split / kind).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                image, mask = draw(rng, kind)
                assert mask is not None
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
    parser.add_argument("--product", choices=sorted(PRODUCTS), default="washers")
    args = parser.parse_args(argv)
    root = generate(
        args.directory,
        args.normal,
        args.test_normal,
        args.per_defect,
        args.train_per_defect,
        args.seed,
        args.product,
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
