"""One HTTP endpoint for everything, as LocalStack's edge port: the SigV4 credential scope's
service name picks the target. `s3` is proxied to the S3 backend, `states` goes to the local
Step Functions, anything else is matched against the template's API Gateway routes and turned
into a REST API proxy event (payload format 1.0) for the handler, called in this process.
"""

from __future__ import annotations

import base64
import fnmatch
import http.client
import ipaddress
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from xml.sax.saxutils import escape as xml_escape

from openlookout.core.s3_names import bucket_name_problem, key_problem
from openlookout.local.console import is_console_request, serve_console
from openlookout.local.lambdas import Functions
from openlookout.local.template import Route

log = logging.getLogger("serve.gateway")

StartResponse = Callable[..., Any]
WsgiEnviron = dict[str, Any]

_CREDENTIAL = re.compile(r"Credential=([^/,\s]*)/([^/]*)/([^/]*)/([^/,\s]*)/")
_HOP_BY_HOP = {
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
    match = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
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


def _headers_of(environ: WsgiEnviron) -> list[tuple[str, str]]:
    headers = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers.append((key[5:].replace("_", "-").title(), value))
    if environ.get("CONTENT_TYPE"):
        headers.append(("Content-Type", environ["CONTENT_TYPE"]))
    if environ.get("CONTENT_LENGTH"):
        headers.append(("Content-Length", environ["CONTENT_LENGTH"]))
    return headers


def _read_body(environ: WsgiEnviron) -> bytes:
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        return bytes(stream.read(int(length)))
    if environ.get("wsgi.input_terminated"):
        return bytes(stream.read())  # chunked: the server de-chunks and marks the end
    return b""


# ---------------------------------------------------------------- S3: a streaming proxy

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
        for name, value in _headers_of(environ):
            lower = name.lower()
            if lower in _HOP_BY_HOP or (lower == "content-length" and not length):
                continue
            forwarded = self.header(name, value)
            if forwarded is not None:
                connection.putheader(name, forwarded)
        if chunked:
            connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        _send_body(connection, environ["wsgi.input"], int(length) if length else None, bool(chunked))
        response = connection.getresponse()
        headers = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
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
        return _CREDENTIAL.sub(
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
            _read_body(environ)
            return s3_error(start_response, "400 Bad Request", *problem)
        if self._query(environ.get("QUERY_STRING", "")) is None:
            _read_body(environ)
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


# ---------------------------------------------------------------- API Gateway REST proxy events


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
            "accessKey": _access_key(environ),
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
    headers, multi_headers = _single_and_multi(_headers_of(environ))
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


def _access_key(environ: WsgiEnviron) -> str | None:
    match = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    return match.group(1) if match else None


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


# ---------------------------------------------------------------- the WSGI application


class Gateway:
    def __init__(
        self,
        functions: Functions,
        router: Router,
        binary_types: list[str],
        account_id: str,
        s3: S3Proxy,
        states: Callable[[WsgiEnviron, StartResponse], Iterable[bytes]] | None = None,
        dynamodb: StreamingProxy | None = None,
    ) -> None:
        self.functions = functions
        self.router = router
        self.binary_types = binary_types
        self.account_id = account_id
        self.s3 = s3
        self.states = states
        self.dynamodb = dynamodb  # handy for inspecting tables with the one endpoint (--debug-backends)
        self.console_config: dict[str, str] | None = None  # the console's config.json
        # Access keys that may call the dynamodb/states routes; None opens them to every caller.
        self.backend_callers: set[str] | None = None

    def _backend_refused(self, environ: WsgiEnviron, start_response: StartResponse, what: str) -> list[bytes]:
        _read_body(environ)
        return json_error(
            start_response,
            403,
            "AccessDeniedException",
            f"The {what} API of openlookout serve answers only its own handlers; "
            "start it with --debug-backends to call it yourself.",
        )

    def __call__(self, environ: WsgiEnviron, start_response: StartResponse) -> Iterable[bytes]:
        service = signed_service(environ)
        allowed = self.backend_callers is None or _access_key(environ) in self.backend_callers
        try:
            if service == "s3":
                return self.s3(environ, start_response)
            if service == "dynamodb" and self.dynamodb is not None:
                if not allowed:
                    return self._backend_refused(environ, start_response, "DynamoDB")
                return self.dynamodb(environ, start_response)
            if service == "states" or environ.get("HTTP_X_AMZ_TARGET", "").startswith("AWSStepFunctions."):
                if not allowed:
                    return self._backend_refused(environ, start_response, "Step Functions")
                if self.states is None:
                    return json_error(start_response, 400, "UnknownOperationException", "No Step Functions")
                return self.states(environ, start_response)
            if service is None and is_console_request(environ):
                return serve_console(environ, start_response, config=self.console_config)
            return self.api(environ, start_response)
        except ConnectionError as error:
            log.error("backend unreachable: %s", error)
            return json_error(start_response, 503, "ServiceUnavailableException", str(error))

    def api(self, environ: WsgiEnviron, start_response: StartResponse) -> list[bytes]:
        method = environ["REQUEST_METHOD"]
        path = raw_path(environ)
        match, path_known, stripped = self.router.match(method, path)
        if match is None:
            body = _read_body(environ)  # drain, so keep-alive connections stay in sync
            del body
            if path_known:
                return json_error(
                    start_response, 405, "MethodNotAllowedException", f"{method} is not allowed on {path}"
                )
            return json_error(
                start_response, 404, "UnknownOperationException", f"No route for {method} {path}"
            )
        stage = path[1 : len(path) - len(stripped)] if stripped != path else ""
        stage = stage or (self.router.stages[0] if self.router.stages else "")
        event = proxy_event(
            environ, match, stripped, _read_body(environ), self.binary_types, stage, self.account_id
        )
        started = time.monotonic()
        try:
            result = self.functions.invoke(match.route.function, event)
        except Exception:
            log.exception("%s failed", match.route.function)
            return json_error(start_response, 502, "InternalServerErrorException", "Internal server error")
        finally:
            log.info(
                "%s %s -> %s (%.0f ms)",
                method,
                path,
                match.route.function,
                (time.monotonic() - started) * 1000,
            )
        return proxy_response(result, start_response)
