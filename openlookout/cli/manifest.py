"""`openlookout manifest from-folder DIR --bucket B`: uploads a folder's images (and its masks, in
L4V's format) to S3 and writes the Ground Truth manifests that CreateDataset reads."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from openlookout.cli.connection import Clients, connection_options
from openlookout.cli.output import USAGE_ERROR, CommandError
from openlookout.cli.progress import Counter, StatusLine


@dataclass(frozen=True)
class Written:
    uri: str
    normal: int
    anomaly: int
    masks: int

    def summary(self) -> str:
        masks = f", {self.masks} with masks" if self.masks else ""
        counts = f"{self.normal} normal, {self.anomaly} anomaly{masks}"
        return f"{self.uri}: {self.normal + self.anomaly} images ({counts})"


def from_folder(
    s3: Any,
    root: Path,
    bucket: str,
    prefix: str,
    train_key: str | None = None,
    test_key: str | None = None,
    on_upload: Callable[[], None] | None = None,
    threads: int = 16,
) -> list[Written]:
    """Uploads the images (and converted masks) with `s3` and writes the manifests; returns what was
    written. `on_upload` is called (from worker threads) after each image."""
    from openlookout.cli.folder_layout import Sample, class_colors, l4v_mask, manifest_line, plan

    plans = plan(root, prefix, train_key, test_key)
    base = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    colors = class_colors(s.anomaly_type for p in plans for s in p.samples if s.anomaly_type and s.mask)
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]

    def upload(sample: Sample) -> str:
        relative = sample.image.relative_to(root).as_posix()
        image_key = f"{base}{relative}"
        s3.put_object(Bucket=bucket, Key=image_key, Body=sample.image.read_bytes())
        mask_uri = color = None
        if sample.mask is not None and sample.anomaly_type is not None:
            color = colors[sample.anomaly_type]
            mask_key = f"{base}masks/{Path(relative).with_suffix('.png').as_posix()}"
            s3.put_object(Bucket=bucket, Key=mask_key, Body=l4v_mask(sample.mask, color))
            mask_uri = f"s3://{bucket}/{mask_key}"
        if on_upload is not None:
            on_upload()
        return manifest_line(f"s3://{bucket}/{image_key}", sample, mask_uri, color, created)

    written = []
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for manifest in plans:
            lines = list(pool.map(upload, manifest.samples))
            s3.put_object(Bucket=bucket, Key=manifest.key, Body=("\n".join(lines) + "\n").encode())
            anomalies = sum(1 for s in manifest.samples if s.anomaly_type)
            masks = sum(1 for s in manifest.samples if s.anomaly_type and s.mask)
            written.append(
                Written(f"s3://{bucket}/{manifest.key}", len(manifest.samples) - anomalies, anomalies, masks)
            )
    return written


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from openlookout.cli import folder_layout

    manifest = subparsers.add_parser("manifest", help="make Ground Truth manifests for datasets")
    commands = manifest.add_subparsers(dest="manifest_command", required=True, metavar="COMMAND")
    parser = commands.add_parser(
        "from-folder",
        parents=[connection_options()],
        help="upload a folder of images to S3 and write its manifest(s)",
        description=folder_layout.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("folder", type=Path, metavar="DIR")
    parser.add_argument("--bucket", required=True, help="the S3 bucket for images, masks and manifests")
    parser.add_argument("--prefix", default="", help="key prefix for everything written (default: none)")
    parser.add_argument(
        "--train-manifest",
        metavar="KEY",
        help="manifest key (default PREFIX/train.manifest, "
        "or PREFIX/dataset.manifest for normal/ + anomaly/ folders)",
    )
    parser.add_argument(
        "--test-manifest", metavar="KEY", help="test manifest key (default PREFIX/test.manifest)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from openlookout.cli.folder_layout import LayoutError, plan

    try:
        total = sum(
            len(p.samples) for p in plan(args.folder, args.prefix, args.train_manifest, args.test_manifest)
        )
    except LayoutError as error:
        raise CommandError(str(error), USAGE_ERROR) from None
    line = StatusLine(sys.stderr)  # stdout keeps only the manifests written
    counter = Counter("uploaded", total, line)
    s3 = Clients.of(args).s3
    written = from_folder(
        s3, args.folder, args.bucket, args.prefix, args.train_manifest, args.test_manifest, counter.add
    )
    line.done()
    for manifest in written:
        print(manifest.summary())
    return 0
