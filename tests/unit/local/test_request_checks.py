"""openlookout.local.request_checks: what a request must show before the local endpoint answers."""

from __future__ import annotations

import io
import time
from typing import Any

import pytest

from openlookout.local.request_checks import RequestChecks, host_name

SIGNED = (
    "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/{service}/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=" + "a" * 64
)


def environ(
    method: str = "GET", query: str = "", service: str | None = "lookoutvision", **headers: str
) -> Any:
    env: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "QUERY_STRING": query,
        "HTTP_HOST": "127.0.0.1:3000",
        "wsgi.input": io.BytesIO(b""),
    }
    if service:
        env["HTTP_AUTHORIZATION"] = SIGNED.format(service=service)
        env["HTTP_X_AMZ_DATE"] = "20260101T000000Z"
    for name, value in headers.items():
        env["CONTENT_TYPE" if name == "content_type" else "HTTP_" + name.upper()] = value
    return env


@pytest.fixture
def checks() -> RequestChecks:
    return RequestChecks("127.0.0.1", "127.0.0.1")


def test_a_signed_sdk_call_passes(checks: RequestChecks) -> None:
    assert checks.refusal(environ(), "lookoutvision", console=False) is None
    own = environ("POST", origin="http://127.0.0.1:3000", sec_fetch_site="same-origin")
    assert checks.refusal(own, "lookoutvision", console=False) is None
    # A form cannot PUT: a PUT body labelled as a form (urllib's default) is an upload like any other.
    labelled = environ("PUT", content_type="application/x-www-form-urlencoded")
    assert checks.refusal(labelled, "s3", console=False) is None


@pytest.mark.parametrize(
    ("header", "name"),
    [("localhost:3000", "localhost"), ("[::1]:3000", "::1"), ("127.0.0.1", "127.0.0.1"), ("a.b:1", "a.b")],
)
def test_host_name(header: str, name: str) -> None:
    assert host_name(header) == name


@pytest.mark.parametrize(
    "host", ["evil.example", "127.0.0.2:3000", "localhost.evil.example", "", "0.0.0.0:3000"]
)
def test_only_the_bound_address_and_localhost(checks: RequestChecks, host: str) -> None:
    refusal = checks.refusal(environ(host=host), "lookoutvision", console=False)
    assert refusal is not None and refusal.status == 403 and "Host" in refusal.message
    for own in ("127.0.0.1:3000", "localhost:3000", "LOCALHOST:9999"):  # any port: ssh -L forwards
        assert checks.refusal(environ(host=own), "lookoutvision", console=False) is None


def test_bound_to_every_interface_any_ip_literal_but_no_name() -> None:
    checks = RequestChecks("0.0.0.0", "127.0.0.1")
    assert checks.host_allowed("192.168.1.20:3000") and checks.host_allowed("[fe80::1]:3000")
    assert not checks.host_allowed("my-laptop.lan:3000")


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "http://evil.example"},
        {"origin": "http://127.0.0.1:8080"},  # another loopback port is another origin
        {"origin": "null"},
        {"sec_fetch_site": "cross-site"},
        {"sec_fetch_site": "same-site"},
        {"content_type": "multipart/form-data; boundary=x"},
        {"content_type": "application/x-www-form-urlencoded"},
    ],
)
def test_other_pages_and_forms_are_refused(checks: RequestChecks, headers: dict[str, str]) -> None:
    refusal = checks.refusal(environ("POST", **headers), "lookoutvision", console=False)
    assert refusal is not None and refusal.status == 403


def test_unsigned_and_malformed_signatures(checks: RequestChecks) -> None:
    refusal = checks.refusal(environ(service=None), None, console=False)
    assert refusal is not None and refusal.json_code == "MissingAuthenticationTokenException"
    for bad in ("AWS AKID:c2lnbmF0dXJl", SIGNED.replace("a" * 64, "00"), SIGNED.replace("host;", "")):
        refusal = checks.refusal(environ(authorization=bad), "s3", console=False)
        assert refusal is not None and refusal.code == "AuthorizationHeaderMalformed", bad
    undated = environ()
    del undated["HTTP_X_AMZ_DATE"]
    assert checks.refusal(undated, "lookoutvision", console=False) is not None


def _sigv4_query(signed_at: float, expires: int) -> str:
    date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(signed_at))
    return (
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20260101%2Fus-east-1%2Fs3%2Faws4_request"
        f"&X-Amz-Date={date}&X-Amz-Expires={expires}&X-Amz-SignedHeaders=host&X-Amz-Signature={'b' * 64}"
    )


def test_presigned_urls_for_s3_get_head_put_until_they_expire(checks: RequestChecks) -> None:
    now = time.time()
    fresh_v4, stale_v4 = _sigv4_query(now, 3600), _sigv4_query(now - 7200, 3600)
    fresh_v2 = f"AWSAccessKeyId=AKID&Signature=c2lnbmF0dXJlc2lnbmF0dXJl&Expires={int(now) + 60}"
    for method in ("GET", "HEAD", "PUT"):
        for query in (fresh_v4, fresh_v2):
            assert checks.refusal(environ(method, query, None), "s3", console=False) is None
    expired = checks.refusal(environ("GET", stale_v4, None), "s3", console=False)
    assert expired is not None and expired.message == "Request has expired"
    posted = checks.refusal(environ("POST", fresh_v4, None), "s3", console=False)  # a form could send it
    assert posted is not None and "GET, HEAD and PUT" in posted.message
    partial = checks.refusal(environ("GET", "AWSAccessKeyId=x", None), "s3", console=False)  # issue 21
    assert partial is not None and partial.status == 403
    # Presigned URLs are S3's: an API call needs the header.
    assert checks.refusal(environ("GET", fresh_v4, None), "lookoutvision", console=False) is not None


def test_the_console_files_need_no_signature_but_the_right_host(checks: RequestChecks) -> None:
    assert checks.refusal(environ(service=None, sec_fetch_site="cross-site"), None, console=True) is None
    assert checks.refusal(environ(service=None, host="evil.example"), None, console=True) is not None
