"""A streaming proxy to a backend on a loopback port (DynamoDB Local under --debug-backends): the
caller's access key swapped for the one the backend accepts, the Host for the backend's own."""

from __future__ import annotations

import http.client
import logging
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

from openlookout.local.wsgi import (
    CHUNK,
    CREDENTIAL,
    HOP_BY_HOP,
    StartResponse,
    WsgiEnviron,
    headers_of,
    raw_path,
)

log = logging.getLogger("serve.gateway")


class StreamingProxy:
    """Forwards a request to a backend server as it came, streaming both bodies."""

    def __init__(self, backend_url: str, access_key: str) -> None:
        parts = urlsplit(backend_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.access_key = access_key

    def target(self, environ: WsgiEnviron) -> str:
        query = environ.get("QUERY_STRING", "")
        return raw_path(environ) + ("?" + query if query else "")

    def header(self, name: str, value: str) -> str:
        """The value to forward for a header: the backend's key in the credential scope."""
        if name.lower() != "authorization":
            return value
        return CREDENTIAL.sub(
            lambda m: f"Credential={self.access_key}/{m.group(2)}/{m.group(3)}/{m.group(4)}/", value
        )

    def __call__(self, environ: WsgiEnviron, start_response: StartResponse) -> Iterable[bytes]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=300)
        length = environ.get("CONTENT_LENGTH")
        method = environ["REQUEST_METHOD"]
        chunked = (
            not length and environ.get("wsgi.input_terminated") and method not in ("GET", "HEAD", "DELETE")
        )
        connection.putrequest(method, self.target(environ), skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", f"{self.host}:{self.port}")
        for name, value in headers_of(environ):
            lower = name.lower()
            if lower in HOP_BY_HOP or (lower == "content-length" and not length):
                continue
            connection.putheader(name, self.header(name, value))
        if chunked:
            connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        _send_body(connection, environ["wsgi.input"], int(length) if length else None, bool(chunked))
        response = connection.getresponse()
        headers = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
        start_response(f"{response.status} {response.reason}", headers)
        return _stream(response, connection)


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
