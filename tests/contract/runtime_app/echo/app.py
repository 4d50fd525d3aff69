"""A test-only Lambda: echoes its event, doubles `value`, fails on request."""

from typing import Any


class EchoFailure(Exception):
    pass


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    if isinstance(event, dict) and event.get("fail"):
        raise EchoFailure(f"asked to fail: {event['fail']}")
    value = event.get("value", 0) if isinstance(event, dict) else event
    return {"doubled": value * 2, "function": context.function_name, "request_id": context.aws_request_id}
