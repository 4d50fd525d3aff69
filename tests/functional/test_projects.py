"""Project and tag operations, handler by handler, with botocore's serializer and parser."""

from datetime import datetime

import pytest
from botocore.exceptions import ClientError

from openlookout.storage.tables import ModelItem
from tests.functional.conftest import Caller, error_code, rejection


def test_create_describe_list_delete(call: Caller):
    created = call("CreateProject", ProjectName="bottles")["ProjectMetadata"]
    assert created["ProjectArn"] == "arn:aws:lookoutvision:us-east-1:123456789012:project/bottles"
    assert isinstance(created["CreationTimestamp"], datetime)

    described = call("DescribeProject", ProjectName="bottles")["ProjectDescription"]
    assert described["ProjectName"] == "bottles"
    assert described["Datasets"] == []

    listed = call("ListProjects")["Projects"]
    assert [p["ProjectName"] for p in listed] == ["bottles"]

    assert call("DeleteProject", ProjectName="bottles")["ProjectArn"] == created["ProjectArn"]
    with pytest.raises(ClientError) as excinfo:
        call("DescribeProject", ProjectName="bottles")
    assert error_code(excinfo) == "ResourceNotFoundException"
    assert excinfo.value.response["ResourceType"] == "PROJECT"
    assert excinfo.value.response["ResourceId"] == "bottles"


def test_duplicate_name_is_a_conflict(call: Caller):
    call("CreateProject", ProjectName="dup")
    with pytest.raises(ClientError) as excinfo:
        call("CreateProject", ProjectName="dup")
    assert error_code(excinfo) == "ConflictException"
    assert excinfo.value.response["ResourceId"] == "dup"


@pytest.mark.parametrize("name", ["-starts-with-dash", "has space", "x" * 256, "ümlaut"])
def test_invalid_names_are_validation_errors_naming_the_member(call: Caller, name: str):
    with pytest.raises(ClientError) as excinfo:
        call("CreateProject", ProjectName=name)
    assert error_code(excinfo) == "ValidationException"
    assert "ProjectName" in excinfo.value.response["Error"]["Message"]


def test_pagination_walks_every_project_once(call: Caller):
    names = [f"p{i:02d}" for i in range(7)]
    for name in names:
        call("CreateProject", ProjectName=name)
    seen, token, pages = [], None, 0
    while True:
        page = call("ListProjects", MaxResults=3, **({"NextToken": token} if token else {}))
        seen += [p["ProjectName"] for p in page["Projects"]]
        pages += 1
        token = page.get("NextToken")
        if not token:
            break
    assert seen == names
    assert pages == 3


def test_max_results_above_100_is_refused(call: Caller):
    with pytest.raises(ClientError) as excinfo:
        call("ListProjects", MaxResults=101)
    assert error_code(excinfo) == "ValidationException"
    assert "MaxResults" in excinfo.value.response["Error"]["Message"]


@pytest.mark.parametrize("token", ["AAAA", "bm90LWEtdG9rZW4=", "x" * 40, "==="])
def test_forged_tokens_are_validation_errors(call: Caller, token: str):
    call("CreateProject", ProjectName="a")
    assert rejection(call, "ListProjects", NextToken=token) == "ValidationException"


def test_client_token_replays_the_first_answer(call: Caller):
    first = call("CreateProject", ProjectName="once", ClientToken="token-1")
    again = call("CreateProject", ProjectName="once", ClientToken="token-1")
    assert again["ProjectMetadata"] == first["ProjectMetadata"]
    with pytest.raises(ClientError) as excinfo:
        call("CreateProject", ProjectName="other", ClientToken="token-1")
    assert error_code(excinfo) == "ValidationException"
    assert "token-1" in excinfo.value.response["Error"]["Message"]
    assert rejection(call, "CreateProject", ProjectName="once", ClientToken="token-2") == "ConflictException"


def test_malformed_json_body(call: Caller):
    event = call.event_for("CreateProject", {"ProjectName": "x"})
    event["body"] = '{"ProjectName": '
    response = call.raw("CreateProject", event)
    assert response["statusCode"] == 400
    assert response["headers"]["x-amzn-ErrorType"] == "ValidationException"
    assert response["headers"]["x-amzn-RequestId"]
    with pytest.raises(ClientError) as excinfo:
        call.parse("CreateProject", response)
    assert error_code(excinfo) == "ValidationException"


def test_wrong_json_types_are_validation_errors(call: Caller):
    event = call.event_for("CreateProject", {"ProjectName": "x"})
    event["body"] = '{"ProjectName": 5}'
    assert call.raw("CreateProject", event)["statusCode"] == 400
    event["body"] = "[1, 2]"
    assert call.raw("CreateProject", event)["statusCode"] == 400


def test_unexpected_failures_are_internal_server_errors(call: Caller, monkeypatch: pytest.MonkeyPatch):
    from openlookout.services import projects

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(projects, "describe_project", boom)
    with pytest.raises(ClientError) as excinfo:
        call("DescribeProject", ProjectName="x")
    assert error_code(excinfo) == "InternalServerException"
    assert "disk on fire" not in excinfo.value.response["Error"]["Message"]


def _model(project: str, version: int) -> str:
    arn = f"arn:aws:lookoutvision:us-east-1:123456789012:model/{project}/{version}"
    ModelItem(project, version, model_arn=arn, status="TRAINED").save()
    return arn


def test_tags_on_a_model(call: Caller):
    arn = _model("p", 1)
    call("TagResource", ResourceArn=arn, Tags=[{"Key": "team", "Value": "qa"}, {"Key": "line", "Value": "4"}])
    tags = call("ListTagsForResource", ResourceArn=arn)["Tags"]
    assert tags == [{"Key": "line", "Value": "4"}, {"Key": "team", "Value": "qa"}]
    call("UntagResource", ResourceArn=arn, TagKeys=["line", "absent"])
    assert call("ListTagsForResource", ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "qa"}]


def test_tags_errors(call: Caller):
    missing = "arn:aws:lookoutvision:us-east-1:123456789012:model/p/9"
    with pytest.raises(ClientError) as excinfo:
        call("ListTagsForResource", ResourceArn=missing)
    assert error_code(excinfo) == "ResourceNotFoundException"
    assert excinfo.value.response["ResourceType"] == "MODEL"
    for bad in ["not-an-arn", "arn:aws:lookoutvision:us-east-1:123456789012:project/p"]:
        assert (
            rejection(call, "TagResource", ResourceArn=bad, Tags=[{"Key": "a", "Value": "b"}])
            == "ValidationException"
        )
    arn = _model("p", 2)
    with pytest.raises(ClientError) as excinfo:
        call("TagResource", ResourceArn=arn, Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)])
    assert error_code(excinfo) == "ServiceQuotaExceededException"
    assert excinfo.value.response["QuotaCode"]
    assert (
        rejection(call, "TagResource", ResourceArn=arn, Tags=[{"Key": "aws:reserved", "Value": "v"}])
        == "ValidationException"
    )
    assert call("ListTagsForResource", ResourceArn=arn)["Tags"] == []


def test_delete_project_with_children_is_a_conflict(call: Caller):
    call("CreateProject", ProjectName="parent")
    _model("parent", 1)
    with pytest.raises(ClientError) as excinfo:
        call("DeleteProject", ProjectName="parent")
    assert error_code(excinfo) == "ConflictException"
    assert excinfo.value.response["ResourceId"] == "parent"
    assert excinfo.value.response["ResourceType"] == "PROJECT"
