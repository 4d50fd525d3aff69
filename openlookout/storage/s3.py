"""S3 access: manifests, image headers, and the service's staging objects.

One client per process, built by boto3 from the environment, so `AWS_ENDPOINT_URL` (or
`AWS_ENDPOINT_URL_S3`) points it at `openlookout serve` locally and nothing points it in AWS.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from openlookout.settings import storage_settings

HEADER_BYTES = 64 * 1024  # enough for a PNG header, and for a JPEG's SOF behind usual EXIF/ICC segments
_MISSING_CODES = {"NoSuchKey", "404", "NotFound", "NoSuchBucket", "NoSuchVersion", "InvalidRange"}
_TOTAL_SIZE = re.compile(r"bytes \d+-\d+/(\d+)")


class ObjectUnavailable(Exception):
    """The object does not exist or cannot be read; `reason` says which, in words."""

    def __init__(self, reason: str, missing: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.missing = missing


@cache
def s3_client() -> Any:
    local = storage_settings().s3_endpoint_url is not None
    config = Config(
        # Image checks run on a thread pool; the default pool of 10 connections would serialise them.
        max_pool_connections=64,
        retries={"mode": "standard", "max_attempts": 5},
        # Local S3 endpoints (`openlookout serve`, moto) answer on one host name: path-style addressing.
        s3={"addressing_style": "path"} if local else None,
    )
    return boto3.client("s3", config=config)


def _unavailable(error: ClientError, what: str) -> ObjectUnavailable:
    code = str(error.response.get("Error", {}).get("Code", ""))
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in _MISSING_CODES or status == 404:
        return ObjectUnavailable(f"{what} does not exist", missing=True)
    if code in ("AccessDenied", "403") or status == 403:
        return ObjectUnavailable(f"{what} cannot be read (access denied)", missing=False)
    return ObjectUnavailable(f"{what} cannot be read ({code or status})", missing=False)


@dataclass(frozen=True)
class ObjectHead:
    size: int  # the object's full size in bytes
    data: bytes  # its first bytes (all of it when it is small)


def read_head(bucket: str, key: str, length: int = HEADER_BYTES) -> ObjectHead:
    """The object's size and first `length` bytes, in one ranged GET (no whole-image download)."""
    uri = f"s3://{bucket}/{key}"
    try:
        response = s3_client().get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{length - 1}")
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "InvalidRange":  # an empty object
            return ObjectHead(0, b"")
        raise _unavailable(error, uri) from None
    if (response.get("ContentRange") or "").endswith("/0"):
        return ObjectHead(0, b"")
    try:
        data = response["Body"].read()
    except BotoCoreError:
        # s3rver answers a ranged GET of an empty object with a body shorter than it announces.
        if _size(bucket, key) == 0:
            return ObjectHead(0, b"")
        raise ObjectUnavailable(f"{uri} cannot be read (the download was cut short)", missing=False) from None
    match = _TOTAL_SIZE.fullmatch(response.get("ContentRange") or "")
    size = int(match.group(1)) if match else int(response.get("ContentLength", len(data)))
    return ObjectHead(size, data[:length])


def _size(bucket: str, key: str) -> int:
    try:
        return int(s3_client().head_object(Bucket=bucket, Key=key)["ContentLength"])
    except ClientError as error:
        raise _unavailable(error, f"s3://{bucket}/{key}") from None


def read_object(bucket: str, key: str) -> bytes:
    uri = f"s3://{bucket}/{key}"
    try:
        return s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        raise _unavailable(error, uri) from None


def stream_object(bucket: str, key: str, version_id: str | None = None) -> Iterator[bytes]:
    """The object's bytes in chunks, so a large manifest never sits in memory whole."""
    uri = f"s3://{bucket}/{key}"
    arguments = {"Bucket": bucket, "Key": key, **({"VersionId": version_id} if version_id else {})}
    try:
        body = s3_client().get_object(**arguments)["Body"]
    except ClientError as error:
        raise _unavailable(error, uri) from None
    yield from body.iter_chunks(chunk_size=1024 * 1024)


def put_text(bucket: str, key: str, text: str | bytes) -> None:
    body = text.encode("utf-8") if isinstance(text, str) else text
    s3_client().put_object(Bucket=bucket, Key=key, Body=body)


def get_text(bucket: str, key: str) -> str:
    return read_object(bucket, key).decode("utf-8")


def delete_prefix(bucket: str, prefix: str) -> int:
    """Deletes every object under `prefix`; returns how many."""
    client = s3_client()
    deleted = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            deleted += len(keys)
    return deleted
