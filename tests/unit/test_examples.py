"""The built-in example dataset: MVTec layout, masks on every defect, deterministic, and its CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from openlookout.examples import DEFECTS, main


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_cli_writes_an_mvtec_layout_with_a_mask_per_defect(tmp_path: Path, capsys) -> None:
    args = [
        "--normal",
        "3",
        "--test-normal",
        "2",
        "--per-defect",
        "2",
        "--train-per-defect",
        "1",
        "--seed",
        "3",
    ]
    assert main([str(tmp_path / "a"), *args]) == 0
    root = tmp_path / "a"
    assert capsys.readouterr().out == (
        f"{root}: train/good 3, train/{{scratch,dent,stain}} 1 each, test/good 2, "
        "test/{scratch,dent,stain} 2 each, masks in ground_truth/\n"
    )
    assert len(list((root / "train" / "good").glob("*.jpg"))) == 3
    assert len(list((root / "test" / "good").glob("*.jpg"))) == 2
    for kind in DEFECTS:
        tests = sorted((root / "test" / kind).glob("*.jpg"))
        assert len(tests) == 2 and len(list((root / "train" / kind).glob("*.jpg"))) == 1
        for image in tests:
            mask = np.asarray(
                Image.open(root / "ground_truth" / kind / f"{image.stem}_mask.png").convert("L")
            )
            assert mask.shape == (256, 256) and set(np.unique(mask)) == {0, 255}

    # The same seed gives the same images; another seed does not.
    main([str(tmp_path / "b"), *args])
    main([str(tmp_path / "c"), *args[:-1], "4"])
    first = (root / "test" / "scratch" / "000.jpg").read_bytes()
    assert _files(root) == _files(tmp_path / "b")
    assert first == (tmp_path / "b" / "test" / "scratch" / "000.jpg").read_bytes()
    assert first != (tmp_path / "c" / "test" / "scratch" / "000.jpg").read_bytes()


def test_the_rotated_parts_lie_at_any_angle_with_a_mask_on_every_defect(tmp_path: Path) -> None:
    from openlookout.examples import PART_DEFECTS

    args = ["--normal", "6", "--test-normal", "1", "--per-defect", "2", "--train-per-defect", "0"]
    assert main([str(tmp_path), *args, "--product", "parts", "--seed", "5"]) == 0
    angles = []
    for path in sorted((tmp_path / "train" / "good").glob("*.jpg")):
        # The bracket's long axis, from the bright pixels' second moments.
        ys, xs = np.nonzero(np.asarray(Image.open(path).convert("L")) > 140)
        cov = np.cov(np.stack([xs, ys]))
        vx, vy = np.linalg.eigh(cov)[1][:, -1]
        angles.append(np.degrees(np.arctan2(vy, vx)) % 180)
    assert np.ptp(angles) > 60  # not one pose
    for kind in PART_DEFECTS:
        for image in sorted((tmp_path / "test" / kind).glob("*.jpg")):
            mask = np.asarray(
                Image.open(tmp_path / "ground_truth" / kind / f"{image.stem}_mask.png").convert("L")
            )
            assert mask.shape == (256, 256) and set(np.unique(mask)) == {0, 255}
            assert 10 < (mask == 255).sum() < 2000
