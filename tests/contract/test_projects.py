"""Projects and tags through a plain boto3 client over HTTP, against `openlookout serve`."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.contract.signing import send

Names = Callable[[str], str]


def code(excinfo: pytest.ExceptionInfo[ClientError]) -> str:
    return str(excinfo.value.response["Error"]["Code"])


def test_create_describe_list_delete(lookoutvision: Any, unique_name: Names) -> None:
    name = unique_name("bottles")
    created = lookoutvision.create_project(ProjectName=name)["ProjectMetadata"]
    assert created["ProjectName"] == name
    assert created["ProjectArn"].startswith("arn:aws:lookoutvision:")
    assert created["ProjectArn"].endswith(f":project/{name}")
    described = lookoutvision.describe_project(ProjectName=name)["ProjectDescription"]
    assert described["ProjectArn"] == created["ProjectArn"]
    assert described["Datasets"] == []
    names = [
        p["ProjectName"]
        for page in lookoutvision.get_paginator("list_projects").paginate()
        for p in page["Projects"]
    ]
    assert name in names
    deleted = lookoutvision.delete_project(ProjectName=name)
    assert deleted["ProjectArn"] == created["ProjectArn"]
    assert deleted["ResponseMetadata"]["RequestId"]
    with pytest.raises(lookoutvision.exceptions.ResourceNotFoundException) as excinfo:
        lookoutvision.describe_project(ProjectName=name)
    assert excinfo.value.response["ResourceId"] == name
    assert excinfo.value.response["ResourceType"] == "PROJECT"


def test_paginator_walks_every_project_exactly_once(lookoutvision: Any, unique_name: Names) -> None:
    prefix = unique_name("page")
    names = sorted(f"{prefix}-{i}" for i in range(5))
    for name in names:
        lookoutvision.create_project(ProjectName=name)
    try:
        seen: list[str] = []
        pages = 0
        for page in lookoutvision.get_paginator("list_projects").paginate(PaginationConfig={"PageSize": 2}):
            pages += 1
            seen += [p["ProjectName"] for p in page["Projects"] if p["ProjectName"].startswith(prefix)]
        assert seen == names
        assert pages >= 3
    finally:
        for name in names:
            lookoutvision.delete_project(ProjectName=name)


def test_error_cases_return_the_codes_botocore_expects(lookoutvision: Any, unique_name: Names) -> None:
    with pytest.raises(lookoutvision.exceptions.ResourceNotFoundException):
        lookoutvision.describe_project(ProjectName=unique_name("missing"))
    with pytest.raises(lookoutvision.exceptions.ResourceNotFoundException):
        lookoutvision.delete_project(ProjectName=unique_name("missing"))

    name = unique_name("dup")
    lookoutvision.create_project(ProjectName=name)
    with pytest.raises(lookoutvision.exceptions.ConflictException) as excinfo:
        lookoutvision.create_project(ProjectName=name)
    assert excinfo.value.response["ResourceType"] == "PROJECT"
    lookoutvision.delete_project(ProjectName=name)

    for invalid in ["-dash-first", "with space", "ü", "x" * 256]:
        with pytest.raises(lookoutvision.exceptions.ValidationException) as excinfo:
            lookoutvision.create_project(ProjectName=invalid)
        assert "ProjectName" in str(excinfo.value)

    with pytest.raises(lookoutvision.exceptions.ValidationException) as excinfo:
        lookoutvision.create_project(ProjectName=unique_name("tok"), ClientToken="not a valid token!")
    assert "ClientToken" in str(excinfo.value)

    with pytest.raises(lookoutvision.exceptions.ValidationException) as excinfo:
        lookoutvision.list_projects(MaxResults=101)
    assert "MaxResults" in str(excinfo.value)

    for forged in ["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "bm90LWEtdG9rZW4=", "===="]:
        with pytest.raises(lookoutvision.exceptions.ValidationException) as excinfo:
            lookoutvision.list_projects(NextToken=forged)
        assert "pagination token" in str(excinfo.value)


def test_client_token_replays_and_refuses_other_parameters(lookoutvision: Any, unique_name: Names) -> None:
    name = unique_name("idem")
    token = unique_name("token")
    first = lookoutvision.create_project(ProjectName=name, ClientToken=token)
    again = lookoutvision.create_project(ProjectName=name, ClientToken=token)
    assert again["ProjectMetadata"] == first["ProjectMetadata"]
    with pytest.raises(lookoutvision.exceptions.ValidationException):
        lookoutvision.create_project(ProjectName=unique_name("other"), ClientToken=token)
    lookoutvision.delete_project(ProjectName=name)


def _raw(service: Any, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict, Any]:
    """A SigV4-signed request with a body no SDK would send."""
    answer = send(service.endpoint_url, method, path, body, headers, service="lookoutvision")
    return answer.status, answer.headers, json.loads(answer.body)


def test_malformed_json_is_a_validation_error(service: Any, lookoutvision: Any) -> None:
    if not service.is_local:
        pytest.skip("unsigned raw requests are refused by a deployed (IAM-authorized) API")
    status, headers, body = _raw(
        service, "POST", "/2020-11-20/projects", b'{"ProjectName": ', {"Content-Type": "application/json"}
    )
    assert status == 400
    assert headers["x-amzn-errortype"] == "ValidationException"
    assert headers["x-amzn-requestid"]
    assert body["__type"] == "ValidationException"
    # and the service is still up
    assert "Projects" in lookoutvision.list_projects(MaxResults=1)


def test_tags_on_missing_and_malformed_model_arns(lookoutvision: Any, unique_name: Names) -> None:
    project = unique_name("tags")
    lookoutvision.create_project(ProjectName=project)
    arn = lookoutvision.describe_project(ProjectName=project)["ProjectDescription"]["ProjectArn"]
    model_arn = arn.replace(f":project/{project}", f":model/{project}/1")
    with pytest.raises(lookoutvision.exceptions.ResourceNotFoundException) as excinfo:
        lookoutvision.list_tags_for_resource(ResourceArn=model_arn)
    assert excinfo.value.response["ResourceType"] == "MODEL"
    with pytest.raises(lookoutvision.exceptions.ResourceNotFoundException):
        lookoutvision.tag_resource(ResourceArn=model_arn, Tags=[{"Key": "k", "Value": "v"}])
    for malformed in ["not-an-arn", arn]:
        with pytest.raises(lookoutvision.exceptions.ValidationException):
            lookoutvision.untag_resource(ResourceArn=malformed, TagKeys=["k"])
    lookoutvision.delete_project(ProjectName=project)
