"""restJson1 on API Gateway: requests in, responses and errors out, driven by the service model.

botocore validates only required members, types and minimums on the client side, so every
constraint of the model (maxima, patterns, enums, ranges) is enforced here, with a
ValidationException that names the member, in the wording of AWS's own services.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import unquote

import regex  # the model's patterns use \p{L}-style classes, which `re` lacks
from botocore.model import OperationModel, Shape, StructureShape

from openlookout.core.errors import ServiceError, ValidationException

JSON_CONTENT_TYPE = "application/json"


class Request:
    """The parts of an API Gateway proxy event (REST API, payload format 1.0) that we read."""

    def __init__(self, event: Mapping[str, Any]) -> None:
        self.path_parameters: dict[str, str] = dict(event.get("pathParameters") or {})
        self.query: dict[str, str] = dict(event.get("queryStringParameters") or {})
        self.multi_query: dict[str, list[str]] = dict(event.get("multiValueQueryStringParameters") or {})
        self.headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
        raw = event.get("body")
        if raw is None:
            self.body = b""
        elif event.get("isBase64Encoded"):
            self.body = base64.b64decode(raw)
        else:
            self.body = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)


def parse_request(operation: OperationModel, event: Mapping[str, Any]) -> dict[str, Any]:
    """Turns a proxy event into the operation's input members, validated against the model."""
    request = Request(event)
    shape = operation.input_shape
    if shape is None:
        return {}
    payload_member = shape.serialization.get("payload")
    body: dict[str, Any] = {}
    has_body_members = any(
        "location" not in m.serialization and name != payload_member for name, m in shape.members.items()
    )
    if has_body_members and request.body.strip():
        try:
            body = json.loads(request.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValidationException(f"The request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ValidationException("The request body must be a JSON object.")

    params: dict[str, Any] = {}
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire_name = member.serialization.get("name", name)
        if name == payload_member:
            if request.body:
                params[name] = request.body
            continue
        if location == "uri":
            value = request.path_parameters.get(wire_name)
            if value is not None:
                params[name] = unquote(value) if "%" in value else value
        elif location == "querystring":
            if member.type_name == "list":
                values = request.multi_query.get(wire_name)
                if values is None and wire_name in request.query:
                    values = [request.query[wire_name]]
                if values is not None:
                    params[name] = [_from_text(member.member, name, v) for v in values]  # type: ignore[attr-defined]
            elif wire_name in request.query:
                params[name] = _from_text(member, name, request.query[wire_name])
        elif location == "header":
            header = request.headers.get(wire_name.lower())
            if header is not None:
                params[name] = _from_text(member, name, header)
        elif name in body and body[name] is not None:
            params[name] = _from_json(member, name, body[name])

    errors: list[str] = []
    _validate_structure(shape, params, errors, path="")
    if errors:
        count = len(errors)
        noun = "error" if count == 1 else "errors"
        raise ValidationException(f"{count} validation {noun} detected: " + "; ".join(errors))
    return params


def _from_text(shape: Shape, member: str, text: str) -> Any:
    """Converts a URI, query or header value to the member's type."""
    kind = shape.type_name
    if kind in ("integer", "long"):
        try:
            return int(text)
        except ValueError:
            raise ValidationException(f"Value '{text}' at '{member}' is not a valid integer.") from None
    if kind == "boolean":
        if text.lower() not in ("true", "false"):
            raise ValidationException(f"Value '{text}' at '{member}' is not a valid boolean.")
        return text.lower() == "true"
    if kind == "timestamp":
        return _parse_timestamp(member, text)
    return text


def _parse_timestamp(member: str, value: Any) -> datetime:
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(float(value), tz=UTC)
        if isinstance(value, str):
            try:
                return datetime.fromtimestamp(float(value), tz=UTC)
            except ValueError:
                parsed = datetime.fromisoformat(value)
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        pass
    raise ValidationException(f"Value '{value}' at '{member}' is not a valid timestamp.")


def _from_json(shape: Shape, path: str, value: Any) -> Any:
    """Checks a JSON body value's type against the shape; decodes blobs and timestamps."""
    kind = shape.type_name
    ok = True
    if kind == "structure":
        ok = isinstance(value, dict)
        if ok:
            members = shape.members  # type: ignore[attr-defined]
            return {
                k: _from_json(members[k], f"{path}.{k}", v)
                for k, v in value.items()
                if k in members and v is not None
            }
    elif kind == "list":
        ok = isinstance(value, list)
        if ok:
            return [_from_json(shape.member, f"{path}.member", v) for v in value]  # type: ignore[attr-defined]
    elif kind == "map":
        ok = isinstance(value, dict)
        if ok:
            return {str(k): _from_json(shape.value, f"{path}.{k}", v) for k, v in value.items()}  # type: ignore[attr-defined]
    elif kind == "string":
        ok = isinstance(value, str)
    elif kind in ("integer", "long"):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind in ("float", "double"):
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    elif kind == "boolean":
        ok = isinstance(value, bool)
    elif kind == "blob":
        if not isinstance(value, str):
            ok = False
        else:
            try:
                return base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise ValidationException(f"Value at '{path}' is not valid base64.") from None
    elif kind == "timestamp":
        return _parse_timestamp(path, value)
    if not ok:
        raise ValidationException(f"Value at '{path}' must be of type {kind}.")
    return value


def _describe(value: Any) -> str:
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    text = str(value)
    return text if len(text) <= 100 else text[:100] + "..."


def _validate_structure(shape: StructureShape, value: dict[str, Any], errors: list[str], path: str) -> None:
    for name in shape.required_members:
        if value.get(name) is None:
            errors.append(
                f"Value null at '{path}{name}' failed to satisfy constraint: Member must not be null"
            )
    for name, member in shape.members.items():
        if value.get(name) is not None:
            _validate_value(member, value[name], errors, f"{path}{name}")


def _validate_value(shape: Shape, value: Any, errors: list[str], path: str) -> None:
    meta = shape.metadata
    kind = shape.type_name

    def fail(constraint: str) -> None:
        errors.append(f"Value '{_describe(value)}' at '{path}' failed to satisfy constraint: {constraint}")

    if kind == "structure":
        _validate_structure(shape, value, errors, f"{path}.")  # type: ignore[arg-type]
        return
    if kind == "list":
        _check_length(len(value), meta, "Member must have length", fail)
        for index, item in enumerate(value):
            _validate_value(shape.member, item, errors, f"{path}.{index + 1}.member")  # type: ignore[attr-defined]
        return
    if kind == "string":
        _check_length(len(value), meta, "Member must have length", fail)
        enum = shape.enum  # type: ignore[attr-defined]
        if enum and value not in enum:
            fail(f"Member must satisfy enum value set: [{', '.join(enum)}]")
        pattern = meta.get("pattern")
        if pattern and not _compiled(pattern).fullmatch(value):
            fail(f"Member must satisfy regular expression pattern: {pattern}")
        return
    if kind == "blob":
        _check_length(len(value), meta, "Member must have length", fail)
        return
    if kind in ("integer", "long", "float", "double"):
        if "min" in meta and value < meta["min"]:
            fail(f"Member must have value greater than or equal to {meta['min']}")
        if "max" in meta and value > meta["max"]:
            fail(f"Member must have value less than or equal to {meta['max']}")


def _check_length(length: int, meta: Mapping[str, Any], label: str, fail: Any) -> None:
    if "min" in meta and length < meta["min"]:
        fail(f"{label} greater than or equal to {meta['min']}")
    if "max" in meta and length > meta["max"]:
        fail(f"{label} less than or equal to {meta['max']}")


@cache
def _compiled(pattern: str) -> Any:
    return regex.compile(pattern)


def serialize_output(operation: OperationModel, output: Mapping[str, Any]) -> dict[str, Any]:
    """Shapes a service result as the operation's output body (only modelled members)."""
    shape = operation.output_shape
    if shape is None:
        return {}
    return _to_json(shape, output)


def _to_json(shape: Shape, value: Any) -> Any:
    kind = shape.type_name
    if kind == "structure":
        members = shape.members  # type: ignore[attr-defined]
        return {k: _to_json(members[k], v) for k, v in value.items() if k in members and v is not None}
    if kind == "list":
        return [_to_json(shape.member, v) for v in value]  # type: ignore[attr-defined]
    if kind == "map":
        return {k: _to_json(shape.value, v) for k, v in value.items()}  # type: ignore[attr-defined]
    if kind == "timestamp":
        if isinstance(value, datetime):
            return round(value.timestamp(), 3)
        return value
    if kind == "blob":
        return base64.b64encode(value).decode("ascii") if isinstance(value, bytes) else value
    return value


def json_response(status: int, body: Mapping[str, Any], request_id: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": JSON_CONTENT_TYPE, "x-amzn-RequestId": request_id},
        "body": json.dumps(body, separators=(",", ":")),
        "isBase64Encoded": False,
    }


def error_response(error: ServiceError, request_id: str) -> dict[str, Any]:
    body = {"__type": error.code, "message": error.message, "Message": error.message, **error.body_members()}
    response = json_response(error.status_code, body, request_id)
    response["headers"].update({"x-amzn-ErrorType": error.code, **error.headers()})
    return response
