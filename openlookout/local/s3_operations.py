"""Each S3 operation of the local endpoint's allow-list, over an S3Store: parameters checked and
turned into store calls, answers shaped as S3 shapes them."""

from __future__ import annotations

import base64
import binascii
import email.utils
import hashlib
import http.client
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from openlookout.local import s3_listing, s3_xml
from openlookout.local.s3_store import (
    CHUNK,
    STORED_HEADERS,
    ObjectInfo,
    S3Error,
    S3Store,
    check_bucket,
    check_key,
    check_part_number,
    invalid,
)

if TYPE_CHECKING:
    from openlookout.local.s3_request import S3Request

INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"})
DEFAULT_TYPE = "binary/octet-stream"  # what S3 answers for an object stored without one
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


@dataclass
class Answer:
    status: str
    headers: list[tuple[str, str]]
    body: Iterable[bytes]

    @classmethod
    def of(cls, status: int, body: bytes = b"", content_type: str | None = None, **extra: str) -> Answer:
        headers = [("Content-Length", str(len(body)))]
        if content_type:
            headers.append(("Content-Type", content_type))
        headers.extend((name.replace("_", "-"), value) for name, value in extra.items())
        return cls(f"{status} {http.client.responses.get(status, '')}", headers, [body])


def xml(body: bytes) -> Answer:
    return Answer.of(200, body, "application/xml")


# ------------------------------------------------------------------ request bodies


class Body:
    """The request body in chunks, checked at its end against Content-Length, Content-MD5 and the
    SDKs' checksum headers: an S3Error then stops the store from keeping what was written."""

    def __init__(self, request: S3Request) -> None:
        environ, headers = request.environ, request.headers
        if headers.get("x-amz-content-sha256", "").startswith("STREAMING-"):
            raise S3Error(
                "NotImplemented", 501, "aws-chunked uploads are not supported here; sign the payload."
            )
        length = environ.get("CONTENT_LENGTH")
        if not length and not environ.get("wsgi.input_terminated"):
            raise S3Error("MissingContentLength", 411, "You must provide the Content-Length HTTP header.")
        self.stream = environ["wsgi.input"]
        self.remaining = int(length) if length else None
        self.expected = _expected_digests(headers)

    def __iter__(self) -> Iterator[bytes]:
        digests = {n: factory() for n, (factory, _) in self.expected.items() if n != "x-amz-checksum-crc32"}
        crc = 0
        while self.remaining is None or self.remaining > 0:
            chunk = self.stream.read(CHUNK if self.remaining is None else min(CHUNK, self.remaining))
            if not chunk:
                break
            if self.remaining is not None:
                self.remaining -= len(chunk)
            for digest in digests.values():
                digest.update(chunk)
            crc = zlib.crc32(chunk, crc)
            yield chunk
        if self.remaining:
            raise S3Error(
                "IncompleteBody", 400, "You did not provide the number of bytes specified by Content-Length."
            )
        self._verify(digests, crc)

    def _verify(self, digests: dict[str, Any], crc: int) -> None:
        for name, (_, wanted) in self.expected.items():
            got = crc.to_bytes(4, "big") if name == "x-amz-checksum-crc32" else digests[name].digest()
            if got != wanted:
                label = "Content-MD5" if name == "content-md5" else name
                raise S3Error("BadDigest", 400, f"The {label} you specified did not match what was received.")

    def read_all(self, limit: int) -> bytes:
        data = bytearray()
        for chunk in self:
            data += chunk
            if len(data) > limit:
                raise S3Error("MalformedXML", 400, f"The request body is larger than {limit} bytes.")
        return bytes(data)


def _expected_digests(headers: dict[str, str]) -> dict[str, tuple[Callable[[], Any], bytes]]:
    factories: dict[str, Callable[[], Any]] = {
        "content-md5": hashlib.md5,
        "x-amz-checksum-sha1": hashlib.sha1,
        "x-amz-checksum-sha256": hashlib.sha256,
        "x-amz-checksum-crc32": lambda: None,  # Body computes the CRC itself (zlib)
    }
    expected = {}
    for name, factory in factories.items():
        if name in headers:
            try:
                expected[name] = (factory, base64.b64decode(headers[name], validate=True))
            except (binascii.Error, ValueError):
                raise S3Error(
                    "InvalidDigest", 400, f"The {name} you specified is not valid base64."
                ) from None
    sha = headers.get("x-amz-content-sha256", "")
    if re.fullmatch(r"[0-9a-f]{64}", sha):
        expected["x-amz-content-sha256"] = (hashlib.sha256, bytes.fromhex(sha))
    return expected


def kept_headers(request: S3Request) -> dict[str, str]:
    """What PutObject and CreateMultipartUpload keep with the object."""
    kept = {k: v for k, v in request.headers.items() if k in STORED_HEADERS or k.startswith("x-amz-meta-")}
    kept.setdefault("content-type", DEFAULT_TYPE)
    return kept


# ------------------------------------------------------------------ buckets


def list_buckets(store: S3Store, request: S3Request) -> Answer:
    return xml(s3_xml.buckets(store.list_buckets()))


def create_bucket(store: S3Store, request: S3Request) -> Answer:
    Body(request).read_all(64 * 1024)  # CreateBucketConfiguration: a region, meaningless here
    store.create_bucket(request.bucket)  # an owner's own bucket again: 200, as in us-east-1
    return Answer.of(200, Location=f"/{request.bucket}")


def head_bucket(store: S3Store, request: S3Request) -> Answer:
    if not store.bucket_exists(request.bucket):
        raise S3Error("NoSuchBucket", 404, "The specified bucket does not exist.")
    return Answer.of(200)


def delete_bucket(store: S3Store, request: S3Request) -> Answer:
    store.delete_bucket(request.bucket)
    return Answer.of(204)


def list_objects_v2(store: S3Store, request: S3Request) -> Answer:
    return xml(s3_listing.list_objects_v2(store, request.bucket, request.query))


def delete_objects(store: S3Store, request: S3Request) -> Answer:
    keys, quiet = s3_xml.delete_request(Body(request).read_all(s3_xml.MAX_XML_BYTES))
    for key in keys:  # all checked before any is deleted: nothing half-done
        check_key(key)
    store.bucket_dir(request.bucket)
    for key in keys:
        store.delete(request.bucket, key)
    return xml(s3_xml.deleted(keys, quiet))


# ------------------------------------------------------------------ objects


def _version(request: S3Request) -> None:
    if request.query.get("versionId", "null") != "null":
        raise invalid("Invalid version id specified (objects have no versions here).")


def object_headers(info: ObjectInfo) -> list[tuple[str, str]]:
    stored = dict(info.headers)
    content_type = stored.pop("content-type", DEFAULT_TYPE)
    headers = [
        ("Content-Type", content_type),
        ("ETag", f'"{info.etag}"'),
        ("Last-Modified", email.utils.formatdate(info.modified, usegmt=True)),
        ("Accept-Ranges", "bytes"),
    ]
    disposition = stored.pop("content-disposition", None)
    if content_type.split(";", 1)[0].strip().lower() not in INLINE_TYPES:
        # Not a plain image: never rendered on this origin, whatever the uploader asked for.
        disposition = disposition if (disposition or "").lower().startswith("attachment") else "attachment"
    if disposition:
        headers.append(("Content-Disposition", disposition))
    headers.extend(
        (name.title() if not name.startswith("x-amz-") else name, value) for name, value in stored.items()
    )
    return headers


def get_object(store: S3Store, request: S3Request) -> Answer:
    _version(request)
    info, stream = store.open(request.bucket, request.key)
    try:
        not_modified = _preconditions(request.headers, info)
        headers = object_headers(info)
        if not_modified:
            stream.close()
            return Answer("304 Not Modified", [h for h in headers if h[0] != "Content-Type"], [])
        start, end = _range(request.headers.get("range"), info.size)
    except S3Error:
        stream.close()
        raise
    status = "200 OK"
    if (start, end) != (0, info.size - 1) and request.headers.get("range"):
        status = "206 Partial Content"
        headers.append(("Content-Range", f"bytes {start}-{end}/{info.size}"))
    headers.append(("Content-Length", str(max(0, end - start + 1))))
    if request.method == "HEAD":
        stream.close()
        return Answer(status, headers, [])
    stream.seek(start)
    return Answer(status, headers, _file_chunks(stream, end - start + 1))


def _file_chunks(stream: IO[bytes], length: int) -> Iterator[bytes]:
    with stream:
        while length > 0:
            chunk = stream.read(min(CHUNK, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk


def _range(header: str | None, size: int) -> tuple[int, int]:
    """(first, last) byte to send; S3 ignores a Range it cannot parse."""
    match = _RANGE.fullmatch((header or "").strip())
    if not match or match.groups() == ("", ""):
        return 0, size - 1
    first, last = match.groups()
    if first == "":
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), min(size - 1, int(last)) if last else size - 1
    if start >= size or (last and first and int(last) < start):
        raise S3Error("InvalidRange", 416, "The requested range is not satisfiable.")
    return start, end


def _preconditions(headers: dict[str, str], info: ObjectInfo) -> bool:
    """Raises PreconditionFailed; True when the answer is 304 Not Modified."""

    def matches(value: str) -> bool:
        return any(tag.strip() in ("*", f'"{info.etag}"', info.etag) for tag in value.split(","))

    def since(name: str) -> float | None:
        parsed = email.utils.parsedate_to_datetime(headers[name]) if name in headers else None
        return parsed.timestamp() if parsed else None

    try:
        unmodified_since, modified_since = since("if-unmodified-since"), since("if-modified-since")
    except (TypeError, ValueError):
        unmodified_since = modified_since = None  # S3 ignores a date it cannot read
    if "if-match" in headers:
        if not matches(headers["if-match"]):
            raise S3Error(
                "PreconditionFailed", 412, "At least one of the pre-conditions you specified did not hold."
            )
    elif unmodified_since is not None and int(info.modified) > unmodified_since:
        raise S3Error(
            "PreconditionFailed", 412, "At least one of the pre-conditions you specified did not hold."
        )
    if "if-none-match" in headers:
        return matches(headers["if-none-match"])
    return modified_since is not None and int(info.modified) <= modified_since


def put_object(store: S3Store, request: S3Request) -> Answer:
    if "x-amz-copy-source" in request.headers:
        return copy_object(store, request)
    store.bucket_dir(request.bucket)
    check_key(request.key)
    info = store.put(request.bucket, request.key, Body(request), kept_headers(request))
    return Answer.of(200, ETag=f'"{info.etag}"')


def copy_source(header: str) -> tuple[str, str]:
    source, _, version = unquote(header).partition("?")
    if version and version != "versionId=null":
        raise invalid("The copy source's version is not one this store has (objects have no versions here).")
    bucket, _, key = source.lstrip("/").partition("/")
    check_bucket(bucket)
    if not key:
        raise invalid("The copy source must be /bucket/key.")
    check_key(key, "copy source key")
    return bucket, key


def copy_object(store: S3Store, request: S3Request) -> Answer:
    source = copy_source(request.headers["x-amz-copy-source"])
    check_key(request.key)
    Body(request).read_all(0)
    directive = request.headers.get("x-amz-metadata-directive", "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise invalid("Unknown metadata directive: COPY or REPLACE.")
    if directive == "COPY" and source == (request.bucket, request.key):
        raise S3Error(
            "InvalidRequest", 400, "This copy request is illegal because it changes nothing (use REPLACE)."
        )
    headers = kept_headers(request) if directive == "REPLACE" else None
    info = store.copy(source, request.bucket, request.key, headers)
    body = s3_xml.element("LastModified", s3_xml.timestamp(info.modified)) + s3_xml.element(
        "ETag", f'"{info.etag}"'
    )
    return xml(s3_xml.document("CopyObjectResult", body))


def delete_object(store: S3Store, request: S3Request) -> Answer:
    _version(request)
    store.delete(request.bucket, request.key)
    return Answer.of(204)


# ------------------------------------------------------------------ multipart uploads


def create_multipart_upload(store: S3Store, request: S3Request) -> Answer:
    upload_id = store.create_upload(request.bucket, request.key, kept_headers(request))
    inner = s3_xml.element("Bucket", request.bucket) + s3_xml.element("Key", request.key)
    return xml(
        s3_xml.document("InitiateMultipartUploadResult", inner + s3_xml.element("UploadId", upload_id))
    )


def upload_part(store: S3Store, request: S3Request) -> Answer:
    number = check_part_number(request.query.get("partNumber", ""))
    etag = store.put_part(request.bucket, request.key, request.query["uploadId"], number, Body(request))
    return Answer.of(200, ETag=f'"{etag}"')


def complete_multipart_upload(store: S3Store, request: S3Request) -> Answer:
    upload_id = request.query["uploadId"]
    store.upload(request.bucket, request.key, upload_id)  # NoSuchUpload before the body is read
    parts = s3_xml.complete_request(Body(request).read_all(s3_xml.MAX_XML_BYTES))
    info = store.complete_upload(request.bucket, request.key, upload_id, parts)
    inner = s3_xml.element("Location", f"/{request.bucket}/{quote(request.key)}")
    inner += s3_xml.element("Bucket", request.bucket) + s3_xml.element("Key", request.key)
    return xml(
        s3_xml.document("CompleteMultipartUploadResult", inner + s3_xml.element("ETag", f'"{info.etag}"'))
    )


def abort_multipart_upload(store: S3Store, request: S3Request) -> Answer:
    store.abort_upload(request.bucket, request.key, request.query["uploadId"])
    return Answer.of(204)


HANDLERS: dict[str, Callable[[S3Store, S3Request], Answer]] = {
    "ListBuckets": list_buckets,
    "CreateBucket": create_bucket,
    "HeadBucket": head_bucket,
    "DeleteBucket": delete_bucket,
    "ListObjectsV2": list_objects_v2,
    "DeleteObjects": delete_objects,
    "GetObject": get_object,
    "HeadObject": get_object,
    "PutObject": put_object,
    "DeleteObject": delete_object,
    "CreateMultipartUpload": create_multipart_upload,
    "UploadPart": upload_part,
    "CompleteMultipartUpload": complete_multipart_upload,
    "AbortMultipartUpload": abort_multipart_upload,
}
