"""One HTTP endpoint for everything, as LocalStack's edge port: the SigV4 credential scope's
service name picks the target. `s3` goes to the local S3 (an allow-list over files in the data
dir), `states` to the local Step Functions, anything else is matched against the template's API
Gateway routes and turned into a REST API proxy event (payload format 1.0) for the handler,
called in this process. Every request first passes openlookout.local.request_checks.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable

from openlookout.local.console import is_console_request, serve_console
from openlookout.local.lambdas import Functions
from openlookout.local.proxies import StreamingProxy
from openlookout.local.request_checks import Refusal, RequestChecks
from openlookout.local.rest_events import Router, proxy_event, proxy_response
from openlookout.local.s3_api import LocalS3, error_answer
from openlookout.local.s3_store import S3Error
from openlookout.local.wsgi import (
    StartResponse,
    WsgiEnviron,
    access_key,
    drain,
    json_error,
    raw_path,
    read_body,
    signed_service,
)

log = logging.getLogger("serve.gateway")


class Gateway:
    def __init__(
        self,
        functions: Functions,
        router: Router,
        binary_types: list[str],
        account_id: str,
        s3: LocalS3,
        checks: RequestChecks,
        states: Callable[[WsgiEnviron, StartResponse], Iterable[bytes]] | None = None,
        dynamodb: StreamingProxy | None = None,
    ) -> None:
        self.functions = functions
        self.router = router
        self.binary_types = binary_types
        self.account_id = account_id
        self.s3 = s3
        self.checks = checks
        self.states = states
        self.dynamodb = dynamodb  # handy for inspecting tables with the one endpoint (--debug-backends)
        self.console_config: dict[str, str] | None = None  # the console's config.json
        # Access keys that may call the dynamodb/states routes; None opens them to every caller.
        self.backend_callers: set[str] | None = None

    def _backend_refused(self, environ: WsgiEnviron, start_response: StartResponse, what: str) -> list[bytes]:
        drain(environ)
        return json_error(
            start_response,
            403,
            "AccessDeniedException",
            f"The {what} API of openlookout serve answers only its own handlers; "
            "start it with --debug-backends to call it yourself.",
        )

    def __call__(self, environ: WsgiEnviron, start_response: StartResponse) -> Iterable[bytes]:
        service = signed_service(environ)
        console = service is None and "HTTP_AUTHORIZATION" not in environ and is_console_request(environ)
        console = console and environ["REQUEST_METHOD"] in ("GET", "HEAD")
        start_response = no_sniffing(start_response)
        refusal = self.checks.refusal(environ, service, console)
        if refusal is not None:
            log.warning("refused %s %s: %s", environ["REQUEST_METHOD"], raw_path(environ), refusal.message)
            return answer_refusal(environ, start_response, refusal, xml=service == "s3")
        try:
            if service == "s3":
                return self.s3(environ, start_response)
            if service == "dynamodb" and self.dynamodb is not None:
                return self._backend(environ, start_response, "DynamoDB", self.dynamodb)
            if service == "states" or environ.get("HTTP_X_AMZ_TARGET", "").startswith("AWSStepFunctions."):
                return self._backend(environ, start_response, "Step Functions", self.states)
            if console:
                return serve_console(environ, start_response, config=self.console_config)
            return self.api(environ, start_response)
        except ConnectionError as error:
            log.error("backend unreachable: %s", error)
            return json_error(start_response, 503, "ServiceUnavailableException", str(error))

    def _backend(
        self,
        environ: WsgiEnviron,
        start_response: StartResponse,
        what: str,
        app: Callable[[WsgiEnviron, StartResponse], Iterable[bytes]] | None,
    ) -> Iterable[bytes]:
        if self.backend_callers is not None and access_key(environ) not in self.backend_callers:
            return self._backend_refused(environ, start_response, what)
        if app is None:
            read_body(environ)
            return json_error(start_response, 400, "UnknownOperationException", f"No {what} here")
        return app(environ, start_response)

    def api(self, environ: WsgiEnviron, start_response: StartResponse) -> list[bytes]:
        method = environ["REQUEST_METHOD"]
        path = raw_path(environ)
        match, path_known, stripped = self.router.match(method, path)
        if match is None:
            body = read_body(environ)  # drain, so keep-alive connections stay in sync
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
            environ, match, stripped, read_body(environ), self.binary_types, stage, self.account_id
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


def answer_refusal(
    environ: WsgiEnviron, start_response: StartResponse, refusal: Refusal, xml: bool
) -> Iterable[bytes]:
    """A refused request's answer: S3's XML error for S3 clients, the JSON error for the others."""
    drain(environ)
    if not xml:
        return json_error(start_response, refusal.status, refusal.json_code, refusal.message)
    error = S3Error(refusal.code, refusal.status, refusal.message)
    answer = error_answer(error, raw_path(environ), uuid.uuid4().hex[:16].upper(), environ["REQUEST_METHOD"])
    start_response(answer.status, [*answer.headers, ("Content-Security-Policy", "sandbox")])
    return answer.body


def no_sniffing(start_response: StartResponse) -> StartResponse:
    """Every answer says `X-Content-Type-Options: nosniff`: a browser renders nothing as other than
    its declared type (JSON errors echo what the caller sent)."""

    def start(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> object:
        if not any(name.lower() == "x-content-type-options" for name, _ in headers):
            headers = [*headers, ("X-Content-Type-Options", "nosniff")]
        return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

    return start
