"""The wire protocol: parsing, model-driven validation, serialization and error shapes."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import botocore.parsers
import pytest
from urllib3 import HTTPHeaderDict

from openlookout.api.protocol import error_response, parse_request, serialize_output
from openlookout.api.service_model import operation_model, service_model
from openlookout.core import errors


def _event(**parts) -> dict:
    return {"headers": {}, "requestContext": {"requestId": "r-1"}, **parts}


def test_uri_query_header_and_body_members_are_read():
    params = parse_request(
        operation_model("ListDatasetEntries"),
        _event(
            pathParameters={"projectName": "p", "datasetType": "train"},
            queryStringParameters={
                "labeled": "true",
                "maxResults": "5",
                "createdAfter": "2020-06-01T12:30:00Z",
            },
        ),
    )
    assert params == {
        "ProjectName": "p",
        "DatasetType": "train",
        "Labeled": True,
        "MaxResults": 5,
        "AfterCreationDate": datetime(2020, 6, 1, 12, 30, tzinfo=UTC),
    }
    create = parse_request(
        operation_model("CreateProject"),
        _event(headers={"X-Amzn-Client-Token": "abc-1"}, body='{"ProjectName": "p"}'),
    )
    assert create == {"ProjectName": "p", "ClientToken": "abc-1"}


def test_percent_encoded_arn_in_path_is_decoded():
    arn = "arn:aws:lookoutvision:us-east-1:123456789012:model/p/1"
    encoded = "arn%3Aaws%3Alookoutvision%3Aus-east-1%3A123456789012%3Amodel%2Fp%2F1"
    for raw in (arn, encoded):
        params = parse_request(
            operation_model("ListTagsForResource"), _event(pathParameters={"resourceArn": raw})
        )
        assert params == {"ResourceArn": arn}


def test_repeated_query_keys_form_a_list():
    params = parse_request(
        operation_model("UntagResource"),
        _event(
            pathParameters={"resourceArn": "a"},
            multiValueQueryStringParameters={"tagKeys": ["x", "y"]},
            queryStringParameters={"tagKeys": "y"},
        ),
    )
    assert params["TagKeys"] == ["x", "y"]


@pytest.mark.parametrize(
    ("operation", "event", "member", "constraint"),
    [
        ("CreateProject", _event(body="{}"), "ProjectName", "must not be null"),
        ("CreateProject", _event(body='{"ProjectName": "a b"}'), "ProjectName", "regular expression"),
        ("ListProjects", _event(queryStringParameters={"maxResults": "0"}), "MaxResults", "greater than"),
        ("ListProjects", _event(queryStringParameters={"maxResults": "101"}), "MaxResults", "less than"),
        (
            "ListProjects",
            _event(queryStringParameters={"nextToken": "a-b"}),
            "NextToken",
            "regular expression",
        ),
        (
            "DescribeModel",
            _event(pathParameters={"projectName": "p", "modelVersion": "0"}),
            "ModelVersion",
            "regular expression",
        ),
        (
            "DeleteModel",
            _event(pathParameters={"projectName": "p", "modelVersion": "latest"}),
            "ModelVersion",
            "regular expression",
        ),
        (
            "CreateProject",
            _event(body='{"ProjectName": "p"}', headers={"x-amzn-client-token": "no spaces allowed"}),
            "ClientToken",
            "regular expression",
        ),
        (
            "TagResource",
            _event(pathParameters={"resourceArn": "a"}, body='{"Tags": [{"Key": "", "Value": "v"}]}'),
            "Tags.1.member.Key",
            "length",
        ),
        (
            "TagResource",
            _event(pathParameters={"resourceArn": "a"}, body='{"Tags": [{"Key": "k<", "Value": "v"}]}'),
            "Tags.1.member.Key",
            "regular expression",
        ),
    ],
)
def test_constraints_are_enforced_and_name_the_member(operation, event, member, constraint):
    with pytest.raises(errors.ValidationException) as excinfo:
        parse_request(operation_model(operation), event)
    assert f"'{member}'" in excinfo.value.message
    assert constraint in excinfo.value.message


def test_unicode_tag_keys_allowed_by_the_model_pass():
    params = parse_request(
        operation_model("TagResource"),
        _event(
            pathParameters={"resourceArn": "a"}, body='{"Tags": [{"Key": "Linie 4 ü", "Value": "Größe"}]}'
        ),
    )
    assert params["Tags"] == [{"Key": "Linie 4 ü", "Value": "Größe"}]


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ({"maxResults": "ten"}, "integer"),
        ({"labeled": "yes"}, "boolean"),
        ({"createdAfter": "soon"}, "timestamp"),
    ],
)
def test_badly_typed_query_values(query, text):
    event = _event(pathParameters={"projectName": "p", "datasetType": "train"}, queryStringParameters=query)
    with pytest.raises(errors.ValidationException, match=text):
        parse_request(operation_model("ListDatasetEntries"), event)


def test_blob_body_members_are_base64_decoded_and_checked():
    changes = b'{"source-ref": "s3://b/a.jpg"}\n'
    body = json.dumps({"Changes": base64.b64encode(changes).decode()})
    event = _event(pathParameters={"projectName": "p", "datasetType": "train"}, body=body)
    assert parse_request(operation_model("UpdateDatasetEntries"), event)["Changes"] == changes
    event["body"] = '{"Changes": "***"}'
    with pytest.raises(errors.ValidationException, match="base64"):
        parse_request(operation_model("UpdateDatasetEntries"), event)


def test_payload_member_takes_the_raw_binary_body():
    png = b"\x89PNG\r\n\x1a\nrest"
    event = _event(
        pathParameters={"projectName": "p", "modelVersion": "1"},
        headers={"Content-Type": "image/png"},
        body=base64.b64encode(png).decode(),
        isBase64Encoded=True,
    )
    params = parse_request(operation_model("DetectAnomalies"), event)
    assert params["Body"] == png
    assert params["ContentType"] == "image/png"


def test_output_serialization_keeps_only_modelled_members_and_encodes_types():
    when = datetime(2020, 12, 6, 17, 55, 18, 389000, tzinfo=UTC)
    body = serialize_output(
        operation_model("CreateProject"),
        {"ProjectMetadata": {"ProjectName": "p", "CreationTimestamp": when, "Internal": 1}, "Extra": 2},
    )
    assert body == {"ProjectMetadata": {"ProjectName": "p", "CreationTimestamp": 1607277318.389}}
    detect = serialize_output(
        operation_model("DetectAnomalies"), {"DetectAnomalyResult": {"AnomalyMask": b"\x00\x01"}}
    )
    assert detect["DetectAnomalyResult"]["AnomalyMask"] == "AAE="


def _parse_error(response: dict, operation: str = "CreateProject") -> dict:
    parser = botocore.parsers.create_parser("rest-json")
    http = {
        "status_code": response["statusCode"],
        # HTTP header names are case-insensitive; botocore reads them from such a dict.
        "headers": HTTPHeaderDict(response["headers"]),
        "body": response["body"].encode(),
    }
    parsed = parser.parse(http, operation_model(operation).output_shape)
    shape = service_model().shape_for_error_code(parsed["Error"]["Code"])
    assert shape is not None, "botocore must recognise every error we send as a modelled shape"
    parsed.update(parser.parse(http, shape))
    return parsed


@pytest.mark.parametrize(
    ("error", "members"),
    [
        (errors.ValidationException("bad"), {}),
        (errors.AccessDeniedException("no"), {}),
        (
            errors.ResourceNotFoundException("gone", "p", errors.ResourceType.PROJECT),
            {"ResourceId": "p", "ResourceType": "PROJECT"},
        ),
        (
            errors.ConflictException("busy", "p", errors.ResourceType.DATASET),
            {"ResourceId": "p", "ResourceType": "DATASET"},
        ),
        (
            errors.ServiceQuotaExceededException("many", "L-1", "p", errors.ResourceType.MODEL),
            {"QuotaCode": "L-1", "ServiceCode": "lookoutvision", "ResourceId": "p", "ResourceType": "MODEL"},
        ),
        (
            errors.ThrottlingException("slow down", 7, "L-2"),
            {"RetryAfterSeconds": 7, "QuotaCode": "L-2", "ServiceCode": "lookoutvision"},
        ),
        (errors.InternalServerException("oops", 3), {"RetryAfterSeconds": 3}),
    ],
)
def test_every_error_shape_parses_in_botocore(error, members):
    response = error_response(error, "req-9")
    assert response["statusCode"] == error.status_code
    assert response["headers"]["x-amzn-RequestId"] == "req-9"
    parsed = _parse_error(response)
    assert parsed["Error"]["Code"] == error.code
    assert parsed["Error"]["Message"] == error.message
    for key, value in members.items():
        assert parsed[key] == value
    assert parsed["ResponseMetadata"]["RequestId"] == "req-9"


def test_all_seven_model_errors_are_implemented():
    modelled = {shape for shape in service_model().error_shapes}
    assert {e.code for e in errors.ALL_ERRORS} == {s.name for s in modelled}


def test_every_error_answers_the_status_code_of_the_service_model():
    # errors.py states each code once for the service; the service model is the contract it must match.
    shapes = {shape.name: shape for shape in service_model().error_shapes}
    for error in errors.ALL_ERRORS:
        assert error.status_code == shapes[error.code].metadata["error"]["httpStatusCode"], error.code


def test_every_answer_type_has_exactly_the_members_of_the_operations_output_shape():
    from openlookout.services.answers import ANSWERS

    model = service_model()
    assert set(ANSWERS) == set(model.operation_names)
    for operation, answer in ANSWERS.items():
        output = model.operation_model(operation).output_shape
        assert set(answer.__annotations__) == set(output.members), operation
        assert answer.__required_keys__ >= set(output.required_members), operation
