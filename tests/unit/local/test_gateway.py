"""openlookout.local.gateway: service routing, route matching, proxy events and responses."""

from __future__ import annotations

import base64
import io
from typing import Any

from openlookout.local.rest_events import Router, proxy_event, proxy_response
from openlookout.local.template import Route
from openlookout.local.wsgi import signed_service

ROUTES = [
    Route("GET", "/2020-11-20/projects/{projectName}", "Describe"),
    Route("DELETE", "/2020-11-20/projects/{projectName}", "Delete"),
    Route("POST", "/2020-11-20/projects/{projectName}/models/{modelVersion}/detect", "Detect"),
    Route("ANY", "/files/{proxy+}", "Files"),
]


def environ(
    method: str = "GET", path: str = "/", query: str = "", body: bytes = b"", **headers: str
) -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "RAW_URI": path + ("?" + query if query else ""),
        "QUERY_STRING": query,
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)) if body else "",
        "REMOTE_ADDR": "127.0.0.1",
    }
    for name, value in headers.items():
        if name == "content_type":
            env["CONTENT_TYPE"] = value
        else:
            env["HTTP_" + name.upper()] = value
    return env


def test_service_from_sigv4_header_and_presigned_query() -> None:
    auth = (
        "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/{}/aws4_request, SignedHeaders=host, Signature=x"
    )
    assert signed_service(environ(authorization=auth.format("s3"))) == "s3"
    assert signed_service(environ(authorization=auth.format("lookoutvision"))) == "lookoutvision"
    assert signed_service(environ(authorization=auth.format("states"))) == "states"
    query = (
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20240101%2Fus-east-1%2Fs3%2Faws4_request"
    )
    assert signed_service(environ(query=query)) == "s3"
    assert signed_service(environ(query="AWSAccessKeyId=x&Signature=y&Expires=1")) == "s3"
    assert signed_service(environ()) is None


def test_router_matches_params_methods_greedy_and_stage() -> None:
    router = Router(ROUTES, stages=["v1"])
    match, known, path = router.match("GET", "/2020-11-20/projects/p1")
    assert match is not None and match.route.function == "Describe"
    assert match.path_parameters == {"projectName": "p1"}
    match, known, path = router.match("PUT", "/2020-11-20/projects/p1")
    assert match is None and known  # -> 405
    match, known, path = router.match("GET", "/2020-11-20/nothing")
    assert match is None and not known  # -> 404
    match, _, path = router.match("DELETE", "/v1/2020-11-20/projects/p1")
    assert match is not None and match.route.function == "Delete" and path == "/2020-11-20/projects/p1"
    match, _, _ = router.match("PATCH", "/files/a/b/c.txt")
    assert match is not None and match.path_parameters == {"proxy": "a/b/c.txt"}
    match, _, _ = router.match("GET", "/files")
    assert match is None


def test_encoded_slash_stays_in_one_path_parameter() -> None:
    router = Router([Route("GET", "/tags/{resourceArn}", "Tags")])
    match, _, _ = router.match("GET", "/tags/arn%3Aaws%3Alookoutvision%3Aus-east-1%3A1%3Amodel%2Fp%2F1")
    assert match is not None
    assert match.path_parameters["resourceArn"] == "arn%3Aaws%3Alookoutvision%3Aus-east-1%3A1%3Amodel%2Fp%2F1"


def _event(env: dict[str, Any], body: bytes = b"") -> dict[str, Any]:
    router = Router(ROUTES)
    match, _, path = router.match(env["REQUEST_METHOD"], env["RAW_URI"].split("?")[0])
    assert match is not None
    return proxy_event(env, match, path, body, ["image/png", "image/jpeg"], "v1", "000000000000")


def test_proxy_event_text_body_query_and_headers() -> None:
    env = environ(
        "GET",
        "/2020-11-20/projects/p1",
        query="a=1&b=2&a=3&empty=",
        x_amz_date="20240101",
        content_type="application/json",
    )
    event = _event(env, b'{"x": 1}')
    assert event["resource"] == "/2020-11-20/projects/{projectName}"
    assert event["path"] == "/2020-11-20/projects/p1"
    assert event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"projectName": "p1"}
    assert event["queryStringParameters"] == {"a": "3", "b": "2", "empty": ""}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "3"], "b": ["2"], "empty": [""]}
    assert event["headers"]["X-Amz-Date"] == "20240101"
    assert event["multiValueHeaders"]["Content-Type"] == ["application/json"]
    assert event["body"] == '{"x": 1}' and event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["requestId"] and context["stage"] == "v1" and context["resourcePath"] == event["resource"]


def test_proxy_event_binary_media_type_is_base64() -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\xff"
    env = environ("POST", "/2020-11-20/projects/p/models/1/detect", content_type="image/png")
    event = _event(env, png)
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == png
    assert event["queryStringParameters"] is None and event["pathParameters"] == {
        "projectName": "p",
        "modelVersion": "1",
    }


def test_proxy_response_decodes_base64_and_defaults() -> None:
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        captured["status"], captured["headers"] = status, dict(headers)

    body = proxy_response(
        {
            "statusCode": 200,
            "headers": {"Content-Type": "image/png"},
            "body": base64.b64encode(b"\x00\x01").decode(),
            "isBase64Encoded": True,
        },
        start_response,
    )
    assert body == [b"\x00\x01"]
    assert captured["status"].startswith("200") and captured["headers"]["Content-Length"] == "2"
    body = proxy_response({"statusCode": 404, "body": "{}"}, start_response)
    assert captured["status"].startswith("404") and captured["headers"]["Content-Type"] == "application/json"
    proxy_response("not a proxy result", start_response)
    assert captured["status"].startswith("502")
