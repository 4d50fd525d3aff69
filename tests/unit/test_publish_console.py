"""`make deploy-console` (openlookout/tools/publish_console.py) against moto's S3, CloudFormation
and CloudFront: the build lands in the stack's site bucket with config.json, stale files go."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

moto = pytest.importorskip("moto")

from openlookout.tools.publish_console import PublishError, main, publish, site_config, stack_outputs  # noqa: E402

REGION = "eu-west-1"
STACK_TEMPLATE = {
    "Resources": {
        "ConsoleSiteBucket": {"Type": "AWS::S3::Bucket"},
        "ConsoleDataBucket": {"Type": "AWS::S3::Bucket"},
        "ArtifactsBucket": {"Type": "AWS::S3::Bucket"},
    },
    "Outputs": {
        "ApiEndpoint": {"Value": "https://abc123.execute-api.eu-west-1.amazonaws.com/v1"},
        "ConsoleSiteBucketName": {"Value": {"Ref": "ConsoleSiteBucket"}},
        "ConsoleDataBucketName": {"Value": {"Ref": "ConsoleDataBucket"}},
        "ArtifactsBucketName": {"Value": {"Ref": "ArtifactsBucket"}},
        "ConsoleUrl": {"Value": "https://d111111abcdef8.cloudfront.net/"},
        "ConsoleDistributionId": {"Value": "DISTRIBUTION"},
    },
}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Any:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with moto.mock_aws():
        yield


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    (tmp_path / "index.html").write_text("<!doctype html><title>console</title>")
    (tmp_path / "app.js").write_text("console.log(1)")
    (tmp_path / "config.json").write_text('{"endpoint": "stale"}')  # replaced by the stack's
    return tmp_path


def _distribution() -> str:
    config = {
        "CallerReference": "test",
        "Comment": "console",
        "Enabled": True,
        "Origins": {"Quantity": 1, "Items": [{"Id": "console", "DomainName": "site.s3.amazonaws.com",
                                              "S3OriginConfig": {"OriginAccessIdentity": ""}}]},
        "DefaultCacheBehavior": {"TargetOriginId": "console", "ViewerProtocolPolicy": "redirect-to-https",
                                 "MinTTL": 0},
    }  # fmt: skip
    created = boto3.client("cloudfront").create_distribution(DistributionConfig=config)
    return str(created["Distribution"]["Id"])


def test_the_build_and_its_config_land_in_the_site_bucket(aws: Any, dist: Path) -> None:
    cfn = boto3.client("cloudformation", region_name=REGION)
    template = json.dumps(STACK_TEMPLATE).replace("DISTRIBUTION", _distribution())
    cfn.create_stack(StackName="openlookout", TemplateBody=template)
    outputs = stack_outputs(cfn, "openlookout")
    s3 = boto3.client("s3", region_name=REGION)
    site = outputs["ConsoleSiteBucketName"]
    s3.put_object(Bucket=site, Key="old-build.js", Body=b"gone")
    written = publish(dist, outputs, REGION, s3, boto3.client("cloudfront"))
    assert sorted(written) == ["app.js", "config.json", "index.html"]
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=site)["Contents"])
    assert keys == ["app.js", "config.json", "index.html"]  # the stale file went
    index = s3.get_object(Bucket=site, Key="index.html")
    assert index["ContentType"] == "text/html; charset=utf-8" and index["CacheControl"] == "no-cache"
    config = json.loads(s3.get_object(Bucket=site, Key="config.json")["Body"].read())
    assert config == site_config(outputs, REGION)
    assert config["apiGateway"] is True and config["bucket"] == outputs["ConsoleDataBucketName"]
    assert not {"accessKeyId", "secretAccessKey"} & set(config)


def test_a_stack_without_hosting_is_refused(aws: Any, dist: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfn = boto3.client("cloudformation", region_name=REGION)
    template = {**STACK_TEMPLATE, "Outputs": {"ApiEndpoint": {"Value": "https://x/v1"}}}
    cfn.create_stack(StackName="no-console", TemplateBody=json.dumps(template))
    assert main(["--stack", "no-console", "--region", REGION, "--dist", str(dist)]) == 1
    assert "HostConsole=true" in capsys.readouterr().err
    with pytest.raises(PublishError, match="make console"):
        publish(dist / "missing", {"ConsoleSiteBucketName": "b"}, REGION, None, None)
