"""Handlers called as API Gateway would call them, against moto's DynamoDB and S3.

Requests are serialized by botocore's own rest-json serializer and responses parsed by its
own parser, so these tests see exactly what a boto3 user would. moto stands in for DynamoDB
here because these tests call handlers in-process without any server; the contract tests
run the same operations against DynamoDB Local through `openlookout serve`.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.parsers
import botocore.serialize
import pytest
from botocore.awsrequest import prepare_request_dict
from botocore.exceptions import ClientError
from moto import mock_aws
from urllib3 import HTTPHeaderDict

from openlookout.api.service_model import operation_model, routes, service_model
from tests.template_support import api_routes, function_module, lambda_context, resources


def _path_parameters(template_path: str, actual: str) -> dict[str, str]:
    for route in routes():
        if route.path == template_path:
            match = route.regex.match(actual)
            assert match, (template_path, actual)
            return match.groupdict()
    raise AssertionError(template_path)


class Caller:
    """Invokes an operation's handler with a botocore-serialized request."""

    def __init__(self) -> None:
        self._serializer = botocore.serialize.create_serializer("rest-json", include_validation=True)
        self._parser = botocore.parsers.create_parser("rest-json")

    def event_for(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        model = operation_model(operation)
        request = self._serializer.serialize_to_request(params, model)
        prepare_request_dict(request, endpoint_url="https://example.com")
        path = request["url_path"]
        body = request["body"]
        if isinstance(body, dict):  # no body members
            body = b""
        if isinstance(body, str):
            body = body.encode()
        query = request["query_string"] or {}
        multi = {k: v if isinstance(v, list) else [v] for k, v in query.items()}
        template_path = model.http["requestUri"]
        content_type = str(request["headers"].get("Content-Type", ""))
        # API Gateway passes the template's BinaryMediaTypes base64-encoded.
        binary = content_type in ("image/png", "image/jpeg")
        text = base64.b64encode(body).decode() if binary else body.decode("utf-8", "replace")
        return {
            "resource": template_path,
            "path": path.split("?")[0],
            "httpMethod": model.http["method"],
            "headers": {k: str(v) for k, v in request["headers"].items()},
            "queryStringParameters": {k: v[-1] for k, v in multi.items()} or None,
            "multiValueQueryStringParameters": multi or None,
            "pathParameters": _path_parameters(template_path, path.split("?")[0]) or None,
            "requestContext": {"requestId": str(uuid.uuid4())},
            "body": text if body else None,
            "isBase64Encoded": binary,
        }

    def raw(self, operation: str, event: dict[str, Any]) -> dict[str, Any]:
        function = f"{operation}Function"
        return function_module(function).lambda_handler(event, lambda_context(function))  # type: ignore[no-any-return]

    def __call__(self, operation: str, **params: Any) -> dict[str, Any]:
        response = self.raw(operation, self.event_for(operation, params))
        return self.parse(operation, response)

    def parse(self, operation: str, response: dict[str, Any]) -> dict[str, Any]:
        http = {
            "status_code": response["statusCode"],
            "headers": HTTPHeaderDict(response["headers"]),
            "body": response["body"].encode("utf-8"),
        }
        model = operation_model(operation)
        if response["statusCode"] >= 300:
            parsed = self._parser.parse(http, model.output_shape)
            # As botocore.endpoint does: a modelled error's members land at the top level.
            error_shape = service_model().shape_for_error_code(parsed["Error"]["Code"])
            if error_shape is not None:
                parsed.update(self._parser.parse(http, error_shape))
            raise ClientError(parsed, operation)
        return self._parser.parse(http, model.output_shape)  # type: ignore[no-any-return]


def create_template_tables() -> None:
    client = boto3.client("dynamodb")
    for logical_id, table in resources("AWS::DynamoDB::Table").items():
        props = table["Properties"]
        kwargs: dict[str, Any] = {
            "TableName": logical_id,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": "PAY_PER_REQUEST",
        }
        if props.get("GlobalSecondaryIndexes"):
            kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        client.create_table(**kwargs)


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        create_template_tables()
        boto3.client("s3").create_bucket(Bucket="openlookout-artifacts")
        yield


@pytest.fixture
def call(aws: None) -> Caller:
    return Caller()


def error_code(excinfo: pytest.ExceptionInfo[ClientError]) -> str:
    return excinfo.value.response["Error"]["Code"]


def rejection(call: Caller, operation: str, **params: Any) -> str:
    """The error code of a call that must fail (the test fails if it succeeds)."""
    with pytest.raises(ClientError) as excinfo:
        call(operation, **params)
    return error_code(excinfo)


__all__ = ["Caller", "api_routes", "error_code", "json", "rejection"]
