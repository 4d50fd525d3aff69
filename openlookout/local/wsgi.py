"""WSGI helpers the local endpoint shares: which service a request is signed for, its raw path,
headers and body, and AWS-style JSON errors."""

from __future__ import annotations

import http.client
import json
import re
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

StartResponse = Callable[..., Any]
WsgiEnviron = dict[str, Any]

CREDENTIAL = re.compile(r"Credential=([^/,\s]*)/([^/]*)/([^/]*)/([^/,\s]*)/")
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "expect",  # the front server has answered 100-continue already
    "host",
}
CHUNK = 256 * 1024


def signed_service(environ: WsgiEnviron) -> str | None:
    """The service of the SigV4 credential scope (header or presigned query), or None."""
    match = CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    if match:
        return match.group(4)
    query = environ.get("QUERY_STRING", "")
    if "X-Amz-Credential" in query:
        for key, value in parse_qsl(query):
            if key == "X-Amz-Credential":
                parts = value.split("/")
                return parts[3] if len(parts) > 3 else None
    if environ.get("HTTP_AUTHORIZATION", "").startswith("AWS ") or "AWSAccessKeyId=" in query:
        return "s3"  # SigV2 exists only for S3 nowadays
    return None


def raw_path(environ: WsgiEnviron) -> str:
    """The path as sent, still percent-encoded: `%2F` inside an ARN must not split segments."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        if "://" in raw:  # absolute-form request target
            raw = urlsplit(raw).path or "/"
        return str(raw.split("?", 1)[0])
    return quote(environ.get("PATH_INFO", "/"))


def json_error(start_response: StartResponse, status: int, code: str, message: str) -> list[bytes]:
    body = json.dumps({"__type": code, "message": message, "Message": message}).encode()
    reason = http.client.responses.get(status, "Error")
    start_response(
        f"{status} {reason}",
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("x-amzn-ErrorType", code),
            ("x-amzn-RequestId", str(uuid.uuid4())),
        ],
    )
    return [body]


def headers_of(environ: WsgiEnviron) -> list[tuple[str, str]]:
    headers = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers.append((key[5:].replace("_", "-").title(), value))
    if environ.get("CONTENT_TYPE"):
        headers.append(("Content-Type", environ["CONTENT_TYPE"]))
    if environ.get("CONTENT_LENGTH"):
        headers.append(("Content-Length", environ["CONTENT_LENGTH"]))
    return headers


def read_body(environ: WsgiEnviron) -> bytes:
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        return bytes(stream.read(int(length)))
    if environ.get("wsgi.input_terminated"):
        return bytes(stream.read())  # chunked: the server de-chunks and marks the end
    return b""


def drain(environ: WsgiEnviron, limit: int = 1024 * 1024) -> None:
    """Reads what is left of a refused request's body, up to `limit` bytes (the server discards more)."""
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length and length.isdigit():
        remaining = min(int(length), limit)
    elif environ.get("wsgi.input_terminated"):  # chunked: the server marks the end
        remaining = limit
    else:
        return  # no body: reading would wait for the client's next bytes
    while remaining > 0:
        data = stream.read(min(CHUNK, remaining))
        if not data:
            return
        remaining -= len(data)


def access_key(environ: WsgiEnviron) -> str | None:
    match = CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    return match.group(1) if match else None
