"""API Gateway's REST API side: matching a request to the template's routes, the proxy
integration's event (payload format 1.0) for the handler, and the HTTP answer from its result."""

from __future__ import annotations

import base64
import fnmatch
import http.client
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

from openlookout.local.template import Route
from openlookout.local.wsgi import StartResponse, WsgiEnviron, access_key, headers_of, json_error

log = logging.getLogger("serve.gateway")


@dataclass(frozen=True)
class RouteMatch:
    route: Route
    path_parameters: dict[str, str]


class Router:
    def __init__(self, routes: Iterable[Route], stages: Iterable[str] = ()) -> None:
        self.routes = list(routes)
        self.stages = [s for s in stages if s]

    def _match(self, segments: list[str], route: Route) -> dict[str, str] | None:
        params: dict[str, str] = {}
        pattern = route.segments
        for index, part in enumerate(pattern):
            if part.startswith("{") and part.endswith("+}"):  # greedy {proxy+}
                rest = segments[index:]
                if not rest:
                    return None
                params[part[1:-2]] = "/".join(rest)
                return params
            if index >= len(segments):
                return None
            if part.startswith("{") and part.endswith("}"):
                params[part[1:-1]] = segments[index]
            elif part != segments[index]:
                return None
        return params if len(segments) == len(pattern) else None

    def match(self, method: str, path: str) -> tuple[RouteMatch | None, bool, str]:
        """(the match, whether the path exists with another method, the path without a stage)."""
        candidates = [path]
        for stage in self.stages:
            if path.startswith(f"/{stage}/"):
                candidates.append(path[len(stage) + 1 :])
        path_known = False
        for candidate in candidates:
            segments = [s for s in candidate.split("/") if s]
            for route in self.routes:
                params = self._match(segments, route)
                if params is None:
                    continue
                if route.method in (method, "ANY"):
                    return RouteMatch(route, params), True, candidate
                path_known = True
        return None, path_known, path


def _is_binary(content_type: str, binary_types: list[str]) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return (
        any(fnmatch.fnmatch(media_type, pattern.lower()) for pattern in binary_types) if media_type else False
    )


def _single_and_multi(pairs: Iterable[tuple[str, str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """API Gateway's two views of repeated names: the last value wins, and every value in order."""
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        single[name] = value
        multi.setdefault(name, []).append(value)
    return single, multi


def _event_body(body: bytes, content_type: str, binary_types: list[str]) -> tuple[str | None, bool]:
    """(body, isBase64Encoded): binary media types and bodies that are not UTF-8 travel as base64."""
    if not body:
        return None, _is_binary(content_type, binary_types)
    if not _is_binary(content_type, binary_types):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), True


def _request_context(
    environ: WsgiEnviron, match: RouteMatch, path: str, stage: str, account_id: str
) -> dict[str, Any]:
    request_id = str(uuid.uuid4())
    now = time.time()
    return {
        "resourceId": "local",
        "resourcePath": match.route.path,
        "httpMethod": environ["REQUEST_METHOD"],
        "extendedRequestId": request_id,
        "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "path": f"/{stage}{unquote(path)}" if stage else unquote(path),
        "accountId": account_id,
        "protocol": environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
        "stage": stage,
        "domainPrefix": "localhost",
        "requestTimeEpoch": int(now * 1000),
        "requestId": request_id,
        "identity": {
            "sourceIp": environ.get("REMOTE_ADDR", "127.0.0.1"),
            "userAgent": environ.get("HTTP_USER_AGENT"),
            "accessKey": access_key(environ),
            "accountId": account_id,
        },
        "domainName": environ.get("HTTP_HOST", "localhost"),
        "apiId": "local",
    }


def proxy_event(
    environ: WsgiEnviron,
    match: RouteMatch,
    path: str,
    body: bytes,
    binary_types: list[str],
    stage: str,
    account_id: str,
) -> dict[str, Any]:
    """The API Gateway REST proxy-integration event for one request."""
    headers, multi_headers = _single_and_multi(headers_of(environ))
    query_pairs = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    query, multi_query = _single_and_multi(query_pairs)
    text_body, is_binary = _event_body(body, environ.get("CONTENT_TYPE", ""), binary_types)
    return {
        "resource": match.route.path,
        "path": unquote(path),
        "httpMethod": environ["REQUEST_METHOD"],
        "headers": headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": match.path_parameters or None,  # as sent: still percent-encoded
        "stageVariables": None,
        "requestContext": _request_context(environ, match, path, stage, account_id),
        "body": text_body,
        "isBase64Encoded": is_binary,
    }


def proxy_response(result: Any, start_response: StartResponse) -> list[bytes]:
    """Puts a proxy integration result on the wire, as API Gateway does (502 if malformed)."""
    if not isinstance(result, dict) or not isinstance(result.get("statusCode", 200), int):
        log.error("malformed Lambda proxy response: %r", result)
        return json_error(start_response, 502, "InternalServerErrorException", "Internal server error")
    body = result.get("body")
    if body is None:
        data = b""
    elif result.get("isBase64Encoded"):
        data = base64.b64decode(body)
    else:
        data = str(body).encode("utf-8")
    headers: list[tuple[str, str]] = []
    for name, value in (result.get("headers") or {}).items():
        headers.append((str(name), str(value)))
    single = {name.lower() for name, _ in headers}
    for name, values in (result.get("multiValueHeaders") or {}).items():
        if name.lower() not in single:
            headers.extend((str(name), str(v)) for v in values)
    names = {name.lower() for name, _ in headers}
    if "content-type" not in names:
        headers.append(("Content-Type", "application/json"))
    if "x-amzn-requestid" not in names:
        headers.append(("x-amzn-RequestId", str(uuid.uuid4())))
    headers = [(n, v) for n, v in headers if n.lower() not in ("content-length", "transfer-encoding")]
    headers.append(("Content-Length", str(len(data))))
    status = int(result.get("statusCode", 200))
    start_response(f"{status} {http.client.responses.get(status, 'Unknown')}", headers)
    return [data]
