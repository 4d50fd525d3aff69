"""The service's one Logger and Tracer (Powertools), and the wrapper every Lambda entry point uses.

Every function logs through `logger` (JSON lines with the invocation's context and correlation
id) and traces through `tracer` (X-Ray segments on AWS, where template.yaml turns tracing on;
Powertools switches the tracer off outside Lambda, so tests and `openlookout serve` run
without an X-Ray daemon). Per-request metrics are EMF records (`request_metrics`): one
ephemeral metric set per request, so concurrent requests in `openlookout serve` never mix.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import EphemeralMetrics

SERVICE = "openlookout"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)

LambdaHandler = Callable[[Any, Any], Any]

# Where an invocation's correlation id lives: the API Gateway request id for the API functions.
API_REQUEST_ID = correlation_paths.API_GATEWAY_REST


def lambda_entry(
    correlation_id_path: str | None = None, *, log_event: bool = False
) -> Callable[[LambdaHandler], LambdaHandler]:
    """Logger context (cold start, request id, correlation id) and an X-Ray segment per invocation.

    Each invocation starts with clean log keys: those of an earlier invocation must not leak.
    """

    def decorate(handler: LambdaHandler) -> LambdaHandler:
        traced = tracer.capture_lambda_handler(handler, capture_response=False)
        logged = logger.inject_lambda_context(
            traced, correlation_id_path=correlation_id_path, log_event=log_event, clear_state=True
        )
        return wraps(handler)(logged)

    return decorate


def request_metrics(namespace: str) -> EphemeralMetrics:
    """A metric set of one request's own (L4V's per-request CloudWatch metrics)."""
    return EphemeralMetrics(namespace=namespace, service=SERVICE)
