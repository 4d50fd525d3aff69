"""`openlookout manifest from-folder` against moto's S3, with the generated example images."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from PIL import Image

from openlookout.cli import main
from openlookout.cli.folder_layout import LayoutError, anomaly_name, plan
from openlookout.cli.manifest import from_folder
from openlookout.services.manifests import parse_line


def small_copy(washers: Path, root: Path) -> Path:
    """Three files of each folder below (test masks 000-002 go with test images 000-002)."""
    for relative in (
        "train/good",
        "test/good",
        "test/broken_large",
        "ground_truth/broken_large",
        "test/contamination",
        "ground_truth/contamination",
    ):
        source = washers / relative.replace("broken_large", "scratch").replace("contamination", "stain")
        (root / relative).mkdir(parents=True)
        for path in sorted(p for p in source.iterdir() if not p.name.startswith("t"))[:3]:
            shutil.copy(path, root / relative / path.name)
    return root


@pytest.fixture
def bucket():
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="photos")
        yield boto3.client("s3")


def test_anomaly_names_fit_the_service_model():
    assert anomaly_name("broken_large") == "brokenLarge"
    assert anomaly_name("contamination") == "contamination"


def test_mvtec_layout_gives_train_and_test_manifests_with_masks(tmp_path: Path, bucket, washers: Path):
    # Folder names with underscores, as MVTec AD's, become service-model anomaly names.
    written = from_folder(bucket, small_copy(washers, tmp_path / "bottle"), "photos", "bottle/")
    assert [(w.uri, w.normal, w.anomaly, w.masks) for w in written] == [
        ("s3://photos/bottle/train.manifest", 3, 0, 0),
        ("s3://photos/bottle/test.manifest", 3, 6, 6),
    ]
    text = bucket.get_object(Bucket="photos", Key="bottle/test.manifest")["Body"].read().decode()
    entries = [parse_line(n, line) for n, line in enumerate(text.splitlines(), 1)]
    anomalous = [e for e in entries if e.anomaly_class == "anomaly"]
    assert {e.masks[0].anomaly_types for e in anomalous} == {("brokenLarge",), ("contamination",)}
    first = anomalous[0]
    assert first.image.uri == "s3://photos/bottle/test/broken_large/000.jpg"
    mask_key = first.masks[0].location.key
    assert mask_key == "bottle/masks/test/broken_large/000.png"
    mask = Image.open(io.BytesIO(bucket.get_object(Bucket="photos", Key=mask_key)["Body"].read()))
    colors = {color for _, color in mask.convert("RGB").getcolors()}
    color = json.loads(first.entry)["anomaly-mask-ref-metadata"]["internal-color-map"]["1"]["hex-color"]
    assert colors == {(255, 255, 255), tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))}
    assert mask.size == (256, 256)


def test_normal_and_anomaly_folders_give_one_manifest(tmp_path: Path, bucket, washers: Path, capsys):
    for folder, source in (("normal", "train/good"), ("anomaly/scratch", "test/scratch")):
        (tmp_path / folder).mkdir(parents=True)
        for image in sorted((washers / source).iterdir())[:2]:
            shutil.copy(image, tmp_path / folder / image.name)
    (tmp_path / "masks" / "scratch").mkdir(parents=True)
    shutil.copy(washers / "ground_truth/scratch/000_mask.png", tmp_path / "masks/scratch/000.png")
    assert main(["manifest", "from-folder", str(tmp_path), "--bucket", "photos", "--prefix", "mine"]) == 0
    printed = capsys.readouterr()
    assert printed.out == "s3://photos/mine/dataset.manifest: 4 images (2 normal, 2 anomaly, 1 with masks)\n"
    assert "uploaded: 4 of 4" in printed.err  # progress goes to stderr
    text = bucket.get_object(Bucket="photos", Key="mine/dataset.manifest")["Body"].read().decode()
    entries = [parse_line(n, line) for n, line in enumerate(text.splitlines(), 1)]
    assert [(e.anomaly_class, len(e.masks)) for e in entries] == [
        ("normal", 0),
        ("normal", 0),
        ("anomaly", 1),
        ("anomaly", 0),
    ]


def test_an_unknown_layout_is_refused(tmp_path: Path):
    (tmp_path / "pictures").mkdir()
    with pytest.raises(LayoutError):
        plan(tmp_path, "x")
