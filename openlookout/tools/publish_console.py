"""`make deploy-console`: the built web console (console/dist) into a deployed stack's console bucket.

Reads the stack's outputs, copies every built file into ConsoleSiteBucketName (removing files a
new build no longer has), writes config.json with the stack's endpoint, region and buckets (so the
page needs only the user's credentials), and invalidates the CloudFront cache. Deploy the stack
with HostConsole=true (the default) first.

    python -m openlookout.tools.publish_console --stack openlookout [--region eu-west-1]
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3

from openlookout.settings import DEFAULT_REGION

DIST = Path(__file__).resolve().parents[2] / "console" / "dist"
ALWAYS_FRESH = {"index.html", "config.json"}  # the page and its settings: a new build shows at once


class PublishError(Exception):
    pass


def stack_outputs(cloudformation: Any, stack: str) -> dict[str, str]:
    described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def site_config(outputs: Mapping[str, str], region: str) -> dict[str, Any]:
    """What the console reads from config.json: where the service is. Never credentials."""
    return {
        "endpoint": outputs["ApiEndpoint"],
        "region": region,
        "bucket": outputs["ConsoleDataBucketName"],
        "artifactsBucket": outputs["ArtifactsBucketName"],
        "apiGateway": True,
    }


def _put(s3: Any, bucket: str, key: str, body: bytes) -> None:
    content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
    if content_type.startswith("text/") or content_type.endswith("javascript"):
        content_type += "; charset=utf-8"
    cache = "no-cache" if key in ALWAYS_FRESH else "max-age=300"
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, CacheControl=cache)


def publish(dist: Path, outputs: Mapping[str, str], region: str, s3: Any, cloudfront: Any) -> list[str]:
    """Copies the build and config.json into the site bucket; returns the keys written."""
    if "ConsoleSiteBucketName" not in outputs:
        raise PublishError("the stack hosts no console: deploy it with HostConsole=true")
    if not (dist / "index.html").is_file():
        raise PublishError(f"no build in {dist}: run `make console`")
    bucket = outputs["ConsoleSiteBucketName"]
    written = []
    for path in sorted(p for p in dist.rglob("*") if p.is_file()):
        key = path.relative_to(dist).as_posix()
        if key != "config.json":
            _put(s3, bucket, key, path.read_bytes())
            written.append(key)
    _put(s3, bucket, "config.json", json.dumps(site_config(outputs, region), indent=2).encode())
    written.append("config.json")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        stale = [{"Key": o["Key"]} for o in page.get("Contents", []) if o["Key"] not in written]
        if stale:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": stale})
    cloudfront.create_invalidation(
        DistributionId=outputs["ConsoleDistributionId"],
        InvalidationBatch={"Paths": {"Quantity": 1, "Items": ["/*"]}, "CallerReference": str(time.time())},
    )
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stack", required=True, help="the stack's name (samconfig.toml: openlookout)")
    parser.add_argument("--region", default=None, help="the stack's region (default: the boto3 chain)")
    parser.add_argument("--dist", type=Path, default=DIST, help="the built console (default: console/dist)")
    args = parser.parse_args(argv)
    session = boto3.Session(region_name=args.region)
    region = session.region_name or DEFAULT_REGION
    try:
        outputs = stack_outputs(session.client("cloudformation", region_name=region), args.stack)
        written = publish(args.dist, outputs, region, session.client("s3"), session.client("cloudfront"))
    except PublishError as error:
        print(f"publish_console: {error}", file=sys.stderr)
        return 1
    print(f"published {len(written)} files; the console: {outputs['ConsoleUrl']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
