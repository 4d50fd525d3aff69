"""Every IAM policy of the deployed stack names buckets: the stack's own and the users' DataBucketNames.

The template goes through the SAM translator (as `sam deploy` sends it to CloudFormation: policy
templates such as S3ReadPolicy expanded into statements), then each policy's resources are
resolved with the parameters' values, under each setting of the template's conditions.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest
from samtranslator.translator.transform import transform

from tests.template_support import ACCOUNT_ID, REGION, template

NO_VALUE = object()
EVERY_BUCKET = re.compile(r"arn:aws[a-z-]*:s3:::\*")  # a bucket name that starts with a wildcard
POLICY_TYPES = ("AWS::IAM::Role", "AWS::IAM::ManagedPolicy", "AWS::IAM::Policy", "AWS::S3::BucketPolicy")


class Resolver:
    """CloudFormation's intrinsic functions, far enough for the policies' Resource values."""

    def __init__(self, parameters: dict[str, Any], conditions: dict[str, bool]) -> None:
        self.parameters, self.conditions = parameters, conditions

    def ref(self, name: str) -> Any:
        pseudo = {"AWS::Partition": "aws", "AWS::AccountId": ACCOUNT_ID, "AWS::Region": REGION}
        if name == "AWS::NoValue":
            return NO_VALUE
        return pseudo.get(name, self.parameters.get(name, f"<{name}>"))

    def sub(self, text: str, names: dict[str, Any]) -> str:
        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in names:
                return str(self(names[name]))
            return f"<{name}>" if "." in name else str(self.ref(name))

        return re.sub(r"\$\{([^}!]+)\}", one, text)

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in (self(v) for v in value) if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) != 1 or not next(iter(value)).startswith(("Fn::", "Ref")):
            return {key: self(item) for key, item in value.items()}  # a statement, a condition
        (function, argument), = value.items()  # fmt: skip
        if function == "Ref":
            return self.ref(argument)
        if function == "Fn::GetAtt":
            return f"<{'.'.join(argument) if isinstance(argument, list) else argument}>"
        if function == "Fn::Sub":
            text, names = (argument, {}) if isinstance(argument, str) else argument
            return self.sub(text, names)
        if function == "Fn::Join":
            items = self(argument[1])
            return argument[0].join(str(i) for i in (items if isinstance(items, list) else [items]))
        if function == "Fn::Split":
            return str(self(argument[1])).split(argument[0])
        if function == "Fn::If":
            return self(argument[1] if self.conditions[argument[0]] else argument[2])
        return value


@cache
def cloudformation() -> dict[str, Any]:
    """The template as `sam deploy` hands it over: code already uploaded (S3 and ECR URIs), then
    transformed into plain CloudFormation."""

    class NoManagedPolicyNames:  # the template names managed policies by !Ref only
        def load(self) -> dict[str, str]:
            return {}

    packaged = copy.deepcopy(template())
    for resource in packaged["Resources"].values():
        properties = resource.get("Properties", {})
        for uri in ("CodeUri", "DefinitionUri", "ContentUri"):
            if uri in properties:
                properties[uri] = "s3://deployment-bucket/code.zip"
        if properties.get("PackageType") == "Image":
            properties["ImageUri"] = f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/openlookout:train"
    return transform(packaged, {}, NoManagedPolicyNames())  # type: ignore[no-any-return]


def parameters(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, spec in template()["Parameters"].items():
        default = spec.get("Default")
        values[name] = default.split(",") if spec["Type"] == "CommaDelimitedList" else default
    return values | (overrides or {})


def statements(resolve: Resolver) -> Iterator[tuple[str, dict[str, Any]]]:
    """(resource logical id, statement) of every policy document in the transformed template."""
    for name, resource in cloudformation()["Resources"].items():
        if resource["Type"] not in POLICY_TYPES:
            continue
        properties = resource["Properties"]
        documents = [properties.get("PolicyDocument")]
        documents += [policy["PolicyDocument"] for policy in properties.get("Policies", [])]
        for document in filter(None, documents):
            for statement in resolve(document["Statement"]):
                yield name, statement


def resources(statement: dict[str, Any]) -> list[str]:
    found = statement.get("Resource", [])
    return [str(r) for r in (found if isinstance(found, list) else [found])]


def settings() -> list[dict[str, bool]]:
    names = list(template()["Conditions"])
    return [
        dict(zip(names, values, strict=True))
        for values in itertools.product((True, False), repeat=len(names))
    ]


@pytest.mark.parametrize(
    "conditions", settings(), ids=lambda c: "-".join(k for k, v in c.items() if v) or "none"
)
def test_no_policy_reaches_every_bucket(conditions: dict[str, bool]) -> None:
    offending = [
        (name, resource)
        for name, statement in statements(Resolver(parameters(), conditions))
        for resource in resources(statement)
        if EVERY_BUCKET.match(resource)
    ]
    assert offending == []


def test_the_users_buckets_are_the_named_ones_of_this_account() -> None:
    named = Resolver(
        parameters({"DataBucketNames": ["my-images", "line-4-*"]}),
        dict.fromkeys(template()["Conditions"], True),
    )
    users = {
        resource: (name, statement)
        for name, statement in statements(named)
        for resource in resources(statement)
        if resource.startswith("arn:aws:s3:::") and "<" not in resource
    }
    buckets = {"arn:aws:s3:::my-images", "arn:aws:s3:::line-4-*"}
    assert set(users) == buckets | {f"{bucket}/*" for bucket in buckets}
    for _, statement in users.values():
        assert statement["Condition"] == {"StringEquals": {"aws:ResourceAccount": ACCOUNT_ID}}
    # The functions that read or write users' objects get them through the two managed policies only.
    roles = cloudformation()["Resources"]
    for function, policies in {
        "DatasetPrepareFunctionRole": {"DataBucketsReadPolicy"},
        "DatasetCheckChunkFunctionRole": {"DataBucketsReadPolicy"},
        "TrainModelFunctionRole": {"DataBucketsReadPolicy", "DataBucketsWritePolicy"},
        "TrainingJobRole": {"DataBucketsReadPolicy", "DataBucketsWritePolicy"},
        "PackagingWorkflowFunctionRole": {"DataBucketsWritePolicy"},
    }.items():
        attached = roles[function]["Properties"].get("ManagedPolicyArns", [])
        assert {p["Ref"] for p in attached if isinstance(p, dict) and "Ref" in p} == policies, function
