"""The one wrapper every API Lambda handler uses.

A handler module is three lines: it names its operation and calls one service function.
This wrapper does the rest, the same way for all 22 operations: parse and validate the proxy
event against the service model, replay `ClientToken` retries (Powertools idempotency, 8 h),
serialize the result, and turn every failure into the AWS error shape botocore expects.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import cache, wraps
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from botocore.model import OperationModel

from openlookout.api.protocol import error_response, json_response, parse_request, serialize_output
from openlookout.api.service_model import operation_model, route
from openlookout.core.errors import (
    ConflictException,
    InternalServerException,
    ResourceType,
    ServiceError,
    ValidationException,
)
from openlookout.core.observability import API_REQUEST_ID, lambda_entry, logger
from openlookout.settings import settings

Params = dict[str, Any]
ServiceCall = Callable[[Params], Mapping[str, Any]]
LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]

IDEMPOTENCY_SECONDS = 8 * 3600  # L4V: "Client tokens are active for 8 hours"


def _token_member(operation: OperationModel) -> str | None:
    shape = operation.input_shape
    if shape is None:
        return None
    for name, member in shape.members.items():
        if member.metadata.get("idempotencyToken"):
            return name
    return None


def _fingerprint(params: Params) -> str:
    """A stable digest of the request's parameters, so a reused token with other ones is caught."""

    def encode(value: Any) -> Any:
        if isinstance(value, bytes):
            return "sha256:" + hashlib.sha256(value).hexdigest()
        if isinstance(value, datetime):
            return value.isoformat()
        raise TypeError(type(value).__name__)

    canonical = json.dumps(params, sort_keys=True, default=encode, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@cache
def _idempotency_store(operation: str) -> DynamoDBPersistenceLayer:
    # One persistence layer per operation: Powertools binds its config to the first function it serves.
    return DynamoDBPersistenceLayer(table_name=settings().idempotency_table)


def _replayable(operation: str, run: Callable[[], dict[str, Any]], context: Any) -> Callable[..., Any]:
    config = IdempotencyConfig(
        event_key_jmespath="token",
        payload_validation_jmespath="fingerprint",
        expires_after_seconds=IDEMPOTENCY_SECONDS,
    )
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        config.register_lambda_context(context)

    @idempotent_function(
        data_keyword_argument="request",
        persistence_store=_idempotency_store(operation),
        config=config,
        key_prefix=f"openlookout#{operation}",
    )
    def execute(request: dict[str, str]) -> dict[str, Any]:
        return run()

    return execute


def api_operation(operation_name: str) -> Callable[[ServiceCall], LambdaHandler]:
    """Decorates `call(params) -> output members` into an API Gateway proxy Lambda handler."""
    settings()  # at cold start: a function with a missing or invalid variable fails here, naming it
    operation = operation_model(operation_name)
    status_code = route(operation_name).status_code
    token_member = _token_member(operation)

    def decorate(call: ServiceCall) -> LambdaHandler:
        @wraps(call)
        @lambda_entry(correlation_id_path=API_REQUEST_ID)
        def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
            logger.append_keys(operation=operation_name)
            request_id = logger.get_correlation_id() or getattr(context, "aws_request_id", None)
            return with_console_cors(event, serve(event, context, str(request_id or uuid.uuid4())))

        def serve(event: dict[str, Any], context: Any, request_id: str) -> dict[str, Any]:
            token: str | None = None
            params: Params = {}
            try:
                params = parse_request(operation, event)

                def run() -> dict[str, Any]:
                    return serialize_output(operation, call(params))

                token = params.get(token_member) if token_member else None
                if token is None:
                    body = run()
                else:
                    others = {k: v for k, v in params.items() if k != token_member}
                    replayable = _replayable(operation_name, run, context)
                    body = replayable(request={"token": token, "fingerprint": _fingerprint(others)})
                logger.info("request served", extra={"status": status_code})
                return json_response(status_code, body, request_id)
            except Exception as error:  # every failure becomes the AWS error shape botocore expects
                return error_response(_service_error(error, operation_name, token, params), request_id)

        return handler

    return decorate


def _service_error(error: Exception, operation_name: str, token: str | None, params: Params) -> ServiceError:
    """The modelled error a failure answers as (an unexpected one is logged with its traceback)."""
    if isinstance(error, ServiceError):
        logger.info("request refused", extra={"status": error.status_code, "error": error.code})
        return error
    if isinstance(error, IdempotencyValidationError):
        return ValidationException(
            f"The ClientToken {token} was already used with different parameters "
            f"for {operation_name} within the last 8 hours."
        )
    if isinstance(error, IdempotencyAlreadyInProgressError):
        return ConflictException(
            f"A request with ClientToken {token} is still in progress.", str(token), _resource(params)
        )
    logger.exception("request failed")
    return InternalServerException()


# What the console's SDK reads from a response: the request id, and the error type of a failure.
CONSOLE_EXPOSED_HEADERS = "x-amzn-errortype,x-amzn-requestid"


def with_console_cors(event: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """Lets the web console's origin read the response, and no other origin.

    The deployed stack names that origin in the stage variable consoleOrigin (template.yaml);
    `openlookout serve` sets none, as its console is same-origin. SigV4, not CORS, guards the API.
    """
    allowed = (event.get("stageVariables") or {}).get("consoleOrigin")
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    if not allowed or headers.get("origin") != allowed:
        return response
    response["headers"] = {
        **(response.get("headers") or {}),
        "Access-Control-Allow-Origin": allowed,
        "Access-Control-Expose-Headers": CONSOLE_EXPOSED_HEADERS,
        "Vary": "Origin",
    }
    return response


def _resource(params: Params) -> ResourceType:
    if "ModelVersion" in params:
        return ResourceType.MODEL
    if "DatasetType" in params:
        return ResourceType.DATASET
    return ResourceType.PROJECT
