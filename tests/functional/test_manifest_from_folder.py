"""`openlookout manifest from-folder` against moto's S3, with real MVTec images."""

from __future__ import annotations

import argparse
import io
import json
import shutil
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from PIL import Image

from openlookout.services.manifests import parse_line
from openlookout.tools.manifest_from_folder import LayoutError, anomaly_name, from_folder, plan, register

BOTTLE = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "mvtec-bottle"
pytestmark = pytest.mark.skipif(not BOTTLE.is_dir(), reason="../shared/datasets/mvtec-bottle is not here")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="openlookout")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.run(args))


def small_bottle(root: Path) -> Path:
    """A copy of a few MVTec bottle files: tests never write into ../shared."""
    for relative in (
        "train/good",
        "test/good",
        "test/broken_large",
        "ground_truth/broken_large",
        "test/contamination",
        "ground_truth/contamination",
    ):
        (root / relative).mkdir(parents=True)
        for source in sorted((BOTTLE / relative).iterdir())[:3]:
            shutil.copy(source, root / relative / source.name)
    return root


@pytest.fixture
def bucket():
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="photos")
        yield boto3.client("s3")


def test_anomaly_names_fit_the_service_model():
    assert anomaly_name("broken_large") == "brokenLarge"
    assert anomaly_name("contamination") == "contamination"


def test_mvtec_layout_gives_train_and_test_manifests_with_masks(tmp_path: Path, bucket):
    written = from_folder(small_bottle(tmp_path / "bottle"), "photos", "bottle/")
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
    assert mask.size == (512, 512)


def test_normal_and_anomaly_folders_give_one_manifest(tmp_path: Path, bucket):
    for folder, source in (("normal", "train/good"), ("anomaly/scratch", "test/broken_small")):
        (tmp_path / folder).mkdir(parents=True)
        for image in sorted((BOTTLE / source).iterdir())[:2]:
            shutil.copy(image, tmp_path / folder / image.name)
    (tmp_path / "masks" / "scratch").mkdir(parents=True)
    shutil.copy(BOTTLE / "ground_truth/broken_small/000_mask.png", tmp_path / "masks/scratch/000.png")
    assert main(["manifest", "from-folder", str(tmp_path), "--bucket", "photos", "--prefix", "mine"]) == 0
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
