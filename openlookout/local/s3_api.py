"""The local S3 as an allow-list: only the operations and parameters that the product, the
console (JS SDK), boto3's `upload_file`/`download_file` and presigned GET/PUT use reach the
store; anything else is S3's `NotImplemented` (501), a bad value `InvalidArgument` (400).

Path-style addressing only (`/bucket/key`): the gateway accepts no host name but its own.
Every answer carries `X-Content-Type-Options: nosniff` and `Content-Security-Policy: sandbox`,
and an object that is not a plain raster image is sent as an attachment: a user's object is
never active content on the console's origin.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote

from openlookout.local import s3_xml
from openlookout.local.s3_operations import HANDLERS, Answer
from openlookout.local.s3_request import S3Request
from openlookout.local.s3_store import S3Error, S3Store
from openlookout.local.wsgi import StartResponse, WsgiEnviron, raw_path

log = logging.getLogger("serve.s3")

# Parameters of the signature (checked by the gateway) and the SDKs' operation hint.
AUTH_PARAMETERS = frozenset(
    {
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
        "X-Amz-Security-Token",
        "X-Amz-Content-Sha256",  # the JS SDK's presigned URLs (UNSIGNED-PAYLOAD)
        "AWSAccessKeyId",
        "Signature",
        "Expires",
        "x-id",
    }
)
COMMON_HEADERS = frozenset(
    {
        "x-amz-date",
        "x-amz-content-sha256",
        "x-amz-security-token",
        "x-amz-user-agent",
        "x-amz-sdk-checksum-algorithm",
        "x-amz-checksum-crc32",
        "x-amz-checksum-sha1",
        "x-amz-checksum-sha256",
    }
)
MARKERS = ("list-type", "delete", "uploads", "uploadId")  # the query parameters that pick an operation
SECURITY_HEADERS = [("X-Content-Type-Options", "nosniff"), ("Content-Security-Policy", "sandbox")]


@dataclass(frozen=True)
class Operation:
    name: str
    method: str
    target: str  # "service", "bucket" or "object"
    marker: str | None = None
    query: frozenset[str] = frozenset()
    headers: frozenset[str] = frozenset()
    metadata: bool = False  # x-amz-meta-* headers are kept with the object


LISTING = frozenset(
    {"prefix", "delimiter", "max-keys", "continuation-token", "start-after", "encoding-type", "fetch-owner"}
)
OBJECT_READ = frozenset({"versionId", "x-amz-checksum-mode"})  # the JS SDK presigns the mode as a parameter
OPERATIONS = (
    Operation("ListBuckets", "GET", "service"),
    Operation("CreateBucket", "PUT", "bucket"),
    Operation("HeadBucket", "HEAD", "bucket"),
    Operation("DeleteBucket", "DELETE", "bucket"),
    Operation("ListObjectsV2", "GET", "bucket", "list-type", LISTING),
    Operation("DeleteObjects", "POST", "bucket", "delete"),
    Operation("GetObject", "GET", "object", None, OBJECT_READ, frozenset({"x-amz-checksum-mode"})),
    Operation("HeadObject", "HEAD", "object", None, OBJECT_READ, frozenset({"x-amz-checksum-mode"})),
    Operation(
        "PutObject",  # CopyObject too: the same request with x-amz-copy-source
        "PUT",
        "object",
        headers=frozenset({"x-amz-copy-source", "x-amz-metadata-directive"}),
        metadata=True,
    ),
    Operation("DeleteObject", "DELETE", "object", None, frozenset({"versionId"})),
    Operation(
        "CreateMultipartUpload",
        "POST",
        "object",
        "uploads",
        headers=frozenset({"x-amz-checksum-algorithm", "x-amz-checksum-type"}),  # boto3's CRC32 per part
        metadata=True,
    ),
    Operation("UploadPart", "PUT", "object", "uploadId", frozenset({"partNumber"})),
    Operation("CompleteMultipartUpload", "POST", "object", "uploadId"),
    Operation("AbortMultipartUpload", "DELETE", "object", "uploadId"),
)


def parse(environ: WsgiEnviron) -> S3Request:
    bucket, _, key = raw_path(environ).lstrip("/").partition("/")
    query: dict[str, str] = {}
    for name, value in parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True):
        if name in query:
            raise S3Error("InvalidArgument", 400, f"The query parameter {name} is given twice.")
        query[name] = value
    headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    method = environ["REQUEST_METHOD"]
    return S3Request(method, unquote(bucket), unquote(key), query, headers, environ)


def operation_for(request: S3Request) -> Operation:
    """The allow-list entry this request is, or NotImplemented naming what is not supported."""
    markers = [m for m in MARKERS if m in request.query]
    candidates = [
        op
        for op in OPERATIONS
        if op.method == request.method
        and op.target == request.target
        and op.marker == (markers[0] if markers else None)
    ]
    if len(markers) > 1 or not candidates:
        asked = "&".join(sorted(set(request.query) - AUTH_PARAMETERS))
        raise S3Error(
            "NotImplemented",
            501,
            f"{request.method} on {'an ' if request.target == 'object' else 'a '}{request.target}"
            + (f" with ?{asked}" if asked else "")
            + " is not an S3 operation the local endpoint supports.",
        )
    operation = candidates[0]
    for name in request.query:
        if name not in AUTH_PARAMETERS and name != operation.marker and name not in operation.query:
            raise S3Error(
                "NotImplemented", 501, f"{operation.name}: the parameter {name} is not supported here."
            )
    for name in request.headers:
        allowed = name in COMMON_HEADERS or name in operation.headers
        if (
            name.startswith("x-amz-")
            and not allowed
            and not (operation.metadata and name.startswith("x-amz-meta-"))
        ):
            raise S3Error(
                "NotImplemented", 501, f"{operation.name}: the header {name} is not supported here."
            )
    return operation


class LocalS3:
    """WSGI app: S3's REST protocol over an S3Store."""

    def __init__(self, store: S3Store) -> None:
        self.store = store

    def __call__(self, environ: WsgiEnviron, start_response: StartResponse) -> Iterable[bytes]:
        request_id = secrets.token_hex(8).upper()
        resource = raw_path(environ)
        try:
            request = parse(environ)
            resource = request.resource
            operation = operation_for(request)
            answer = HANDLERS[operation.name](self.store, request)
        except S3Error as error:
            answer = error_answer(error, resource, request_id, environ["REQUEST_METHOD"])
        except OSError:
            log.exception("the local S3 store failed")
            answer = error_answer(
                S3Error("InternalError", 500, "The store failed."), resource, request_id, "GET"
            )
        headers = [*answer.headers, *SECURITY_HEADERS, ("x-amz-request-id", request_id)]
        start_response(answer.status, headers)
        return answer.body


def error_answer(error: S3Error, resource: str, request_id: str, method: str) -> Answer:
    body = b"" if method == "HEAD" else s3_xml.error(error.code, error.message, resource, request_id)
    return Answer.of(error.status, body, "application/xml")


__all__ = ["OPERATIONS", "LocalS3", "S3Request", "operation_for", "parse"]
