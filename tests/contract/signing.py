"""Raw HTTP requests as an SDK sends them (SigV4-signed by botocore's own signer) or as an attacker
does (anything), for tests that need a header or query string no boto3 call would produce."""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from urllib.parse import urlsplit

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

REGION = "us-east-1"
CREDENTIALS = Credentials("contract", "contract")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def signed_headers(
    method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None, service: str = "s3"
) -> dict[str, str]:
    """The headers botocore's SigV4 signer adds for this request (S3's variant for `s3`)."""
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    signer = S3SigV4Auth if service == "s3" else SigV4Auth
    signer(CREDENTIALS, service, REGION).add_auth(request)
    return {name: str(value) for name, value in request.headers.items()}


def send(
    endpoint: str,
    method: str,
    target: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    service: str | None = "s3",
) -> Answer:
    """Sends `method target` (path and query exactly as given) to `endpoint`; signed for
    `service` unless it is None. A `Host` in `headers` replaces the real one after signing."""
    parts = urlsplit(endpoint)
    headers = dict(headers or {})
    host = headers.pop("Host", None)
    if service is not None:
        headers = signed_headers(method, endpoint + target, body, headers, service)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    try:
        connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", host or parts.netloc)
        for name, value in headers.items():
            if name.lower() != "host":
                connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()
