"""Streaming proxies to the storage backends: DynamoDB as is, S3 with S3's own name checks and
the access key the backend expects."""

from __future__ import annotations

import http.client
import ipaddress
import logging
import re
import time
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from xml.sax.saxutils import escape as xml_escape

from openlookout.core.s3_names import bucket_name_problem, key_problem
from openlookout.local.wsgi import (
    CHUNK,
    CREDENTIAL,
    HOP_BY_HOP,
    StartResponse,
    WsgiEnviron,
    headers_of,
    raw_path,
    read_body,
)

log = logging.getLogger("serve.gateway")


# s3rver's own rule for virtual-hosted requests (<bucket>.s3[-website][.region].amazonaws.com).
_S3_VHOST = re.compile(r"(?:(.+)\.)?s3(?:-website)?(?:[-.].+)?\.amazonaws\.com")


def s3_target(environ: WsgiEnviron) -> tuple[str, str]:
    """(bucket, key) as the S3 backend will read them: from the Host for virtual-hosted requests
    (s3rver takes any host name that is not an IP or localhost as a bucket), else from the path."""
    path = unquote(raw_path(environ))
    host = environ.get("HTTP_HOST", "").rsplit(":", 1)[0] if "]" not in environ.get("HTTP_HOST", "") else ""
    vhost = _S3_VHOST.fullmatch(host)
    if vhost:
        if vhost.group(1):
            return vhost.group(1), path.lstrip("/")
    elif host and host != "localhost" and not _is_ip(host):
        return host, path.lstrip("/")
    bucket, _, key = path.lstrip("/").partition("/")
    return bucket, key


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def s3_request_problem(environ: WsgiEnviron) -> tuple[str, str] | None:
    """S3's (error code, message) for a bucket name or key no request may reach the backend with."""
    bucket, key = s3_target(environ)
    if not bucket:
        return None  # ListBuckets
    problem = bucket_name_problem(bucket)
    if problem:
        return "InvalidBucketName", f"The specified bucket is not valid: the name {problem}."
    problem = key_problem(key)
    if problem:
        code = "KeyTooLongError" if problem.startswith("is longer") else "InvalidArgument"
        return code, f"The object key {problem}."
    return None


def s3_error(start_response: StartResponse, status: str, code: str, message: str) -> list[bytes]:
    body = (
        "<?xml version='1.0' encoding='UTF-8'?><Error>"
        f"<Code>{code}</Code><Message>{xml_escape(message)}</Message></Error>"
    ).encode()
    start_response(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
    return [body]


class StreamingProxy:
    """Forwards a request to a backend server as it came, streaming both bodies (DynamoDB Local)."""

    def __init__(self, backend_url: str) -> None:
        parts = urlsplit(backend_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80

    def answer_here(self, environ: WsgiEnviron, start_response: StartResponse) -> Iterable[bytes] | None:
        """An answer that needs no backend (a refusal), or None to forward the request."""
        return None

    def target(self, environ: WsgiEnviron) -> str:
        query = environ.get("QUERY_STRING", "")
        return raw_path(environ) + ("?" + query if query else "")

    def header(self, name: str, value: str) -> str | None:
        """The value to forward for a header; None leaves it out."""
        return value

    def __call__(self, environ: WsgiEnviron, start_response: StartResponse) -> Iterable[bytes]:
        answer = self.answer_here(environ, start_response)
        if answer is not None:
            return answer
        connection = http.client.HTTPConnection(self.host, self.port, timeout=300)
        length = environ.get("CONTENT_LENGTH")
        method = environ["REQUEST_METHOD"]
        chunked = (
            not length and environ.get("wsgi.input_terminated") and method not in ("GET", "HEAD", "DELETE")
        )
        connection.putrequest(method, self.target(environ), skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", environ.get("HTTP_HOST", f"{self.host}:{self.port}"))
        for name, value in headers_of(environ):
            lower = name.lower()
            if lower in HOP_BY_HOP or (lower == "content-length" and not length):
                continue
            forwarded = self.header(name, value)
            if forwarded is not None:
                connection.putheader(name, forwarded)
        if chunked:
            connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        _send_body(connection, environ["wsgi.input"], int(length) if length else None, bool(chunked))
        response = connection.getresponse()
        headers = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
        start_response(f"{response.status} {response.reason}", headers)
        return _stream(response, connection)


class S3Proxy(StreamingProxy):
    """The S3 backend behind S3's rules: names checked as S3 checks them, and the caller's access key
    swapped for the backend's (presigned SigV2 URLs sent unsigned, as the backend allows)."""

    def __init__(self, backend_url: str, access_key: str | None) -> None:
        super().__init__(backend_url)
        self.access_key = access_key

    def _rewrite_key(self, text: str) -> str:
        if not self.access_key:
            return text
        return CREDENTIAL.sub(
            lambda m: f"Credential={self.access_key}/{m.group(2)}/{m.group(3)}/{m.group(4)}/", text
        )

    def _query(self, query: str) -> str | None:
        """The query for the backend; None when a SigV2 presigned URL has expired."""
        if not query or not self.access_key:
            return query
        pairs = parse_qsl(query, keep_blank_values=True)
        if not any(k in ("X-Amz-Credential", "AWSAccessKeyId") for k, _ in pairs):
            return query
        rewritten = []
        for key, value in pairs:
            if key == "X-Amz-Credential":
                value = self.access_key + "/" + value.split("/", 1)[1]
            elif key in ("AWSAccessKeyId", "Signature"):
                continue  # SigV2 is the one s3rver verifies: send it unsigned (s3rver allows that)
            elif key == "Expires" and any(k == "AWSAccessKeyId" for k, _ in pairs):
                if value.isdigit() and int(value) < time.time():
                    return None
                continue
            rewritten.append(f"{quote(key, safe='-_.~')}={quote(value, safe='-_.~')}")
        return "&".join(rewritten)

    def answer_here(self, environ: WsgiEnviron, start_response: StartResponse) -> Iterable[bytes] | None:
        problem = s3_request_problem(environ)
        if problem:
            read_body(environ)
            return s3_error(start_response, "400 Bad Request", *problem)
        if self._query(environ.get("QUERY_STRING", "")) is None:
            read_body(environ)
            return s3_error(start_response, "403 Forbidden", "AccessDenied", "Request has expired")
        return None

    def target(self, environ: WsgiEnviron) -> str:
        query = self._query(environ.get("QUERY_STRING", ""))
        return raw_path(environ) + ("?" + query if query else "")

    def header(self, name: str, value: str) -> str | None:
        if name.lower() != "authorization":
            return value
        if value.startswith("AWS ") and self.access_key:
            return None  # SigV2 header: unsigned, see _query
        return self._rewrite_key(value)


def _send_body(
    connection: http.client.HTTPConnection, stream: Any, length: int | None, chunked: bool
) -> None:
    if length is not None:
        remaining = length
        while remaining > 0:
            data = stream.read(min(CHUNK, remaining))
            if not data:
                break
            connection.send(data)
            remaining -= len(data)
    elif chunked:
        while data := stream.read(CHUNK):
            connection.send(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        connection.send(b"0\r\n\r\n")


def _stream(response: http.client.HTTPResponse, connection: http.client.HTTPConnection) -> Iterator[bytes]:
    try:
        while data := response.read(CHUNK):
            yield data
    finally:
        connection.close()
