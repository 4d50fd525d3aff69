"""The deployed stack's support for the web console: CORS on the API and the buckets, and the
CloudFront hosting that exists only under HostConsole. The headers the console really sends are
checked against the template in tests/e2e/test_console.py (CORS_ALLOWED_HEADERS is read from here).
"""

from __future__ import annotations

from typing import Any

from openlookout.api.handler import api_operation, with_console_cors
from tests.template_support import lambda_context, template

ORIGIN = "https://d111111abcdef8.cloudfront.net"
HOSTING = {
    "ConsoleSiteBucket",
    "ConsoleSiteBucketPolicy",
    "ConsoleOriginAccessControl",
    "ConsoleDistribution",
}


def api() -> dict[str, Any]:
    return dict(template()["Resources"]["LookoutVisionApi"]["Properties"])


def cors_allowed_headers() -> set[str]:
    """The request headers the API's preflight allows (lower case)."""
    quoted = api()["Cors"]["AllowHeaders"]
    return {h.strip().lower() for h in quoted.strip("'").split(",")}


def _origin_choices(value: dict[str, Any]) -> list[Any]:
    """The branches of the template's !If [HasConsoleOrigin, ..., !If [IsConsoleHosted, ..., ...]]."""
    condition, given, otherwise = value["Fn::If"]
    assert condition == "HasConsoleOrigin"
    hosted_condition, hosted, neither = otherwise["Fn::If"]
    assert hosted_condition == "IsConsoleHosted"
    return [given, hosted, neither]


def test_the_preflight_answers_without_auth_for_the_consoles_origin_only() -> None:
    props = api()
    assert props["Auth"]["AddDefaultAuthorizerToCorsPreflight"] is False
    given, hosted, neither = _origin_choices(props["Cors"]["AllowOrigin"])
    assert given == {"Fn::Sub": "'${ConsoleOrigin}'"}
    assert hosted == {"Fn::Sub": "'https://${ConsoleDistribution.DomainName}'"}
    assert neither == "'none'"  # no console: an origin no browser sends, never '*'
    stage_origin = _origin_choices(props["Variables"]["consoleOrigin"])
    assert stage_origin[0] == {"Ref": "ConsoleOrigin"} and stage_origin[2] == "none"


def test_the_sigv4_headers_are_allowed() -> None:
    signed = {"authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256", "content-type"}
    assert signed <= cors_allowed_headers()
    assert "*" not in cors_allowed_headers()


def test_gateway_errors_carry_the_cors_headers() -> None:
    for name, response in api()["GatewayResponses"].items():
        headers = response["ResponseParameters"]["Headers"]
        assert _origin_choices(headers["Access-Control-Allow-Origin"])[2] == "'none'", name
        assert "x-amzn-errortype" in headers["Access-Control-Expose-Headers"], name
    assert {"DEFAULT_4XX", "DEFAULT_5XX"} <= set(api()["GatewayResponses"])


def test_the_buckets_the_browser_uses_answer_cors_for_the_console() -> None:
    resources = template()["Resources"]
    data_rules = resources["ConsoleDataBucket"]["Properties"]["CorsConfiguration"]["CorsRules"]
    assert {"GET", "PUT", "HEAD"} <= set(data_rules[0]["AllowedMethods"])  # uploads, thumbnails
    assert "ETag" in data_rules[0]["ExposedHeaders"]
    condition, artifacts, absent = resources["ArtifactsBucket"]["Properties"]["CorsConfiguration"]["Fn::If"]
    assert condition == "ConsoleEnabled" and absent == {"Ref": "AWS::NoValue"}
    assert artifacts["CorsRules"][0]["AllowedMethods"] == ["GET", "HEAD"]  # the ONNX download
    for rules in (data_rules, artifacts["CorsRules"]):
        assert "*" not in str(rules[0]["AllowedOrigins"])


def test_hosting_exists_only_under_the_condition() -> None:
    doc = template()
    assert doc["Conditions"]["IsConsoleHosted"] == {"Fn::Equals": [{"Ref": "HostConsole"}, "true"]}
    assert doc["Parameters"]["HostConsole"]["AllowedValues"] == ["true", "false"]
    conditional = {name for name, r in doc["Resources"].items() if r.get("Condition") == "IsConsoleHosted"}
    assert conditional == HOSTING
    assert doc["Resources"]["ConsoleDataBucket"]["Condition"] == "ConsoleEnabled"
    for output in ("ConsoleUrl", "ConsoleSiteBucketName", "ConsoleDistributionId"):
        assert doc["Outputs"][output]["Condition"] == "IsConsoleHosted"


def test_the_site_bucket_is_private_and_read_through_origin_access_control() -> None:
    resources = template()["Resources"]
    block = resources["ConsoleSiteBucket"]["Properties"]["PublicAccessBlockConfiguration"]
    assert all(block.values())
    origin = resources["ConsoleDistribution"]["Properties"]["DistributionConfig"]["Origins"][0]
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": ["ConsoleOriginAccessControl", "Id"]}
    allow = resources["ConsoleSiteBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert allow["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert "AWS:SourceArn" in allow["Condition"]["StringEquals"]


def _event(origin: str | None, stage_origin: str | None) -> dict[str, Any]:
    return {
        "httpMethod": "GET",
        "path": "/2020-11-20/projects",
        "headers": {"Origin": origin} if origin else {},
        "stageVariables": {"consoleOrigin": stage_origin} if stage_origin else None,
        "requestContext": {"requestId": "r-1"},
    }


def test_handlers_let_only_the_stage_variables_origin_read_the_answer() -> None:
    handler = api_operation("ListProjects")(lambda params: {"Projects": []})
    allowed = handler(_event(ORIGIN, ORIGIN), lambda_context("ListProjectsFunction"))
    assert allowed["statusCode"] == 200
    assert allowed["headers"]["Access-Control-Allow-Origin"] == ORIGIN
    assert "x-amzn-errortype" in allowed["headers"]["Access-Control-Expose-Headers"]
    refused = [(ORIGIN, None), ("https://evil.example", ORIGIN), (ORIGIN, "none"), (None, ORIGIN)]
    for origin, stage_origin in refused:
        response = handler(_event(origin, stage_origin), lambda_context("ListProjectsFunction"))
        assert "Access-Control-Allow-Origin" not in response["headers"], (origin, stage_origin)


def test_errors_are_readable_by_the_console_too() -> None:
    response = with_console_cors(_event(ORIGIN, ORIGIN), {"statusCode": 404, "headers": {"x": "1"}})
    assert response["headers"] == {
        "x": "1",
        "Access-Control-Allow-Origin": ORIGIN,
        "Access-Control-Expose-Headers": "x-amzn-errortype,x-amzn-requestid",
        "Vary": "Origin",
    }
