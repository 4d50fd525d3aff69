"""What a request must show before the local endpoint answers it: that an SDK sent it.

- `Host` is the address the server is bound to, or `localhost` (or, bound to every interface,
  an IP address): a DNS name of someone else's, rebound to 127.0.0.1, is refused.
- An `Origin` header is the endpoint's own (the console's), and `Sec-Fetch-Site` says
  same-origin or none (typed by the user): other web pages are refused.
- A SigV4-shaped `Authorization` header on every API and S3 call; S3 also takes a presigned
  URL (SigV4 or the SigV2 that boto3 presigns with), unexpired, for GET, HEAD and PUT only: a
  browser form can reach a URL, so nothing a form can send (POST) may rest on one.
- POSTs with a form's content type (`multipart/form-data`, `application/x-www-form-urlencoded`) never.

Signatures are not verified (no credentials exist locally): their shape is what no web page
can produce without the browser asking the endpoint first, and it answers no CORS preflight.
"""

from __future__ import annotations

import calendar
import ipaddress
import re
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl

from openlookout.local.wsgi import WsgiEnviron

SIGV4_HEADER = re.compile(
    r"AWS4-HMAC-SHA256 Credential=[\w.+=@-]{1,128}/\d{8}/[a-z0-9-]{1,32}/[a-z0-9-]{1,64}/aws4_request,\s*"
    r"SignedHeaders=(?P<signed>[a-z0-9-]+(?:;[a-z0-9-]+)*),\s*Signature=[0-9a-f]{64}"
)
SIGV4_QUERY = {
    "X-Amz-Algorithm": re.compile(r"AWS4-HMAC-SHA256"),
    "X-Amz-Credential": re.compile(r"[\w.+=@-]{1,128}/\d{8}/[a-z0-9-]{1,32}/s3/aws4_request"),
    "X-Amz-Date": re.compile(r"\d{8}T\d{6}Z"),
    "X-Amz-Expires": re.compile(r"\d{1,6}"),
    "X-Amz-SignedHeaders": re.compile(r"[a-z0-9-]+(?:;[a-z0-9-]+)*"),
    "X-Amz-Signature": re.compile(r"[0-9a-f]{64}"),
}
SIGV2_QUERY = {
    "AWSAccessKeyId": re.compile(r"[\w.+=@-]{1,128}"),
    "Signature": re.compile(r"[A-Za-z0-9+/=]{20,64}"),
    "Expires": re.compile(r"\d{1,12}"),
}
MAX_PRESIGNED_S = 7 * 24 * 3600  # S3's limit for a SigV4 presigned URL
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
WILDCARDS = ("0.0.0.0", "::", "")


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str  # the S3 code; the JSON APIs get `json_code`
    json_code: str
    message: str


def host_name(host_header: str) -> str:
    """The host part of a Host header: `[::1]:3000` -> `::1`, `localhost:3000` -> `localhost`."""
    if host_header.startswith("["):
        return host_header[1:].split("]", 1)[0]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


class RequestChecks:
    def __init__(self, bound_host: str, internal_host: str) -> None:
        self.any_ip = bound_host in WILDCARDS
        self.hosts = {"localhost", bound_host, internal_host} - {""}

    def host_allowed(self, host_header: str) -> bool:
        name = host_name(host_header).lower()
        return name in self.hosts or (self.any_ip and _is_ip(name))

    def refusal(self, environ: WsgiEnviron, service: str | None, console: bool) -> Refusal | None:
        """Why the request is refused, or None. `console`: an unsigned GET of the console's files."""
        host = environ.get("HTTP_HOST", "")
        if not self.host_allowed(host):
            return Refusal(
                403, "AccessDenied", "AccessDeniedException",
                f"The Host {host!r} is not this endpoint's: use its address or localhost.",
            )  # fmt: skip
        problem = _origin_problem(environ, host, console) or _form_problem(environ)
        if problem:
            return Refusal(403, "AccessDenied", "AccessDeniedException", problem)
        if console:
            return None
        return _signature_refusal(environ, service)


def _origin_problem(environ: WsgiEnviron, host: str, console: bool) -> str | None:
    origin = environ.get("HTTP_ORIGIN")
    if origin is not None and origin != f"http://{host}":
        return f"Requests from the origin {origin!r} are refused: only this endpoint's own pages may call it."
    site = environ.get("HTTP_SEC_FETCH_SITE")
    if site not in (None, "same-origin", "none") and not console:
        return f"A {site} request is refused: only this endpoint's own pages may call it."
    return None


def _form_problem(environ: WsgiEnviron) -> str | None:
    """A form's POST (only POST: a form cannot PUT, and urllib labels any PUT body as a form)."""
    content_type = environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
    if environ["REQUEST_METHOD"] == "POST" and content_type in FORM_TYPES:
        return f"Form posts ({content_type}) are refused: S3's POST object and HTML forms are not supported."
    return None


def _signature_refusal(environ: WsgiEnviron, service: str | None) -> Refusal | None:
    authorization = environ.get("HTTP_AUTHORIZATION")
    if authorization is not None:
        match = SIGV4_HEADER.fullmatch(authorization.strip())
        if not match or "host" not in match["signed"].split(";"):
            return Refusal(
                400, "AuthorizationHeaderMalformed", "IncompleteSignatureException",
                "The Authorization header is not an AWS Signature Version 4 with the host signed.",
            )  # fmt: skip
        if not (environ.get("HTTP_X_AMZ_DATE") or environ.get("HTTP_DATE")):
            return Refusal(
                400, "AccessDenied", "IncompleteSignatureException",
                "The request is signed without an X-Amz-Date header.",
            )  # fmt: skip
        return None
    if service == "s3":
        return _presigned_refusal(environ)
    return Refusal(
        403, "AccessDenied", "MissingAuthenticationTokenException",
        "Missing Authentication Token: every call must be signed (SigV4), as the AWS SDKs sign.",
    )  # fmt: skip


def _presigned_refusal(environ: WsgiEnviron) -> Refusal | None:
    query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    if environ["REQUEST_METHOD"] not in ("GET", "HEAD", "PUT"):
        return Refusal(
            403, "AccessDenied", "AccessDeniedException",
            f"A presigned URL is accepted for GET, HEAD and PUT only, not {environ['REQUEST_METHOD']}.",
        )  # fmt: skip
    if all(name in query for name in SIGV4_QUERY):
        shapes, expires = SIGV4_QUERY, _sigv4_expiry(query)
    elif all(name in query for name in SIGV2_QUERY):
        shapes, expires = SIGV2_QUERY, int(query["Expires"]) if query["Expires"].isdigit() else 0
    else:
        return Refusal(
            403, "AccessDenied", "AccessDeniedException",
            "Anonymous access is refused: sign the request or presign the URL.",
        )  # fmt: skip
    bad = [name for name, shape in shapes.items() if not shape.fullmatch(query[name])]
    if bad:
        return Refusal(
            400, "AuthorizationQueryParametersError", "AccessDeniedException", f"Malformed {bad[0]}."
        )
    if expires < time.time():
        return Refusal(403, "AccessDenied", "AccessDeniedException", "Request has expired")
    return None


def _sigv4_expiry(query: dict[str, str]) -> float:
    try:
        signed_at = calendar.timegm(time.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ"))
        lifetime = int(query["X-Amz-Expires"])
    except ValueError:
        return 0
    return signed_at + min(lifetime, MAX_PRESIGNED_S)


__all__ = ["Refusal", "RequestChecks", "host_name"]
