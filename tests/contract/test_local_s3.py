"""The local S3 through plain boto3 and raw HTTP: what its allow-list keeps working for the SDKs
(presigned PUT, ranges, conditional GETs, copies, delimiters) and that a body which does not
match its checksum is refused with nothing kept."""

from __future__ import annotations

import base64
import hashlib
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.contract.conftest import LocalServer
from tests.contract.signing import send

pytestmark = pytest.mark.contract


@pytest.fixture
def bucket(local_service: LocalServer, s3: Any, unique_name: Callable[[str], str]) -> str:
    name = unique_name("s3")
    s3.create_bucket(Bucket=name)
    return name


def test_presigned_put_then_get(s3: Any, bucket: str) -> None:
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "up/a.png"})
    request = urllib.request.Request(url, data=b"\x89PNG", method="PUT")
    with urllib.request.urlopen(request) as response:
        assert response.status == 200
    assert s3.get_object(Bucket=bucket, Key="up/a.png")["Body"].read() == b"\x89PNG"


def test_ranges_and_conditional_gets(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="r", Body=b"0123456789")
    got = s3.get_object(Bucket=bucket, Key="r", Range="bytes=2-4")
    assert (got["Body"].read(), got["ContentRange"]) == (b"234", "bytes 2-4/10")
    assert s3.get_object(Bucket=bucket, Key="r", Range="bytes=-3")["Body"].read() == b"789"
    with pytest.raises(ClientError) as error:
        s3.get_object(Bucket=bucket, Key="r", Range="bytes=10-")
    assert error.value.response["Error"]["Code"] == "InvalidRange"
    etag = got["ETag"]
    with pytest.raises(ClientError) as error:
        s3.get_object(Bucket=bucket, Key="r", IfNoneMatch=etag)
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    with pytest.raises(ClientError) as error:
        s3.get_object(Bucket=bucket, Key="r", IfMatch='"0000"')
    assert error.value.response["Error"]["Code"] == "PreconditionFailed"


def test_a_body_that_does_not_match_its_checksum_is_not_kept(
    local_service: LocalServer, s3: Any, bucket: str
) -> None:
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    answer = send(local_service.endpoint_url, "PUT", f"/{bucket}/bad", b"body", {"Content-MD5": wrong})
    assert answer.status == 400 and b"BadDigest" in answer.body
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="bad")
    s3.put_object(Bucket=bucket, Key="good", Body=b"body", ChecksumAlgorithm="SHA256")  # verified too


def test_copy_keeps_or_replaces_metadata(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"s", ContentType="image/png", Metadata={"a": "1"})
    s3.copy_object(Bucket=bucket, Key="kept", CopySource={"Bucket": bucket, "Key": "src"})
    kept = s3.head_object(Bucket=bucket, Key="kept")
    assert (kept["ContentType"], kept["Metadata"]) == ("image/png", {"a": "1"})
    s3.copy_object(
        Bucket=bucket,
        Key="replaced",
        CopySource={"Bucket": bucket, "Key": "src"},
        MetadataDirective="REPLACE",
        ContentType="text/plain",
    )
    replaced = s3.head_object(Bucket=bucket, Key="replaced")
    assert (replaced["ContentType"], replaced["Metadata"]) == ("text/plain", {})


def test_delimiter_listing_counts_prefixes(s3: Any, bucket: str) -> None:
    for key in ("a/1", "a/2", "b", "c/d/e"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    listed = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [o["Key"] for o in listed["Contents"]] == ["b"]
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["a/", "c/"]
    assert listed["KeyCount"] == 3  # S3 counts the prefixes (s3rver said 0)
    with pytest.raises(ClientError) as error:
        s3.delete_bucket(Bucket=bucket)
    assert error.value.response["Error"]["Code"] == "BucketNotEmpty"
