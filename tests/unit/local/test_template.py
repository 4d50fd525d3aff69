"""openlookout.local.template: CloudFormation tags, env resolution, routes, resources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from openlookout.local.template import LocalNames, SecretStore, Template, load_yaml, substitute

ROOT = Path(__file__).resolve().parents[3]

TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  StageName: {Type: String, Default: v9}
  Level: {Type: String, Default: INFO}
Globals:
  Function:
    Timeout: 12
    Environment:
      Variables:
        TABLE: !Ref ItemsTable
        SIMPLE: !Ref SimpleTable
        BUCKET: !Ref DataBucket
        ACCOUNT: !Ref AWS::AccountId
        REGION: !Sub "${AWS::Region}-x"
        LEVEL: !Ref Level
        SECRET: !Sub "{{resolve:secretsmanager:${TokenSecret}:SecretString}}"
        MACHINE: !GetAtt Flow.Arn
        MACHINE_REF: !Ref Flow
        JOINED: !Join ["-", [a, !Ref Level]]
        UNKNOWN: !GetAtt Queue.QueueUrl
Resources:
  Api:
    Type: AWS::Serverless::Api
    Properties:
      StageName: !Ref StageName
      BinaryMediaTypes: [image~1png, "application~1octet-stream"]
  GetThing:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn/get/
      Handler: app.handler
      Environment:
        Variables:
          LEVEL: DEBUG
      Events:
        Get: {Type: Api, Properties: {RestApiId: !Ref Api, Path: "/things/{name}", Method: get}}
        Any: {Type: Api, Properties: {RestApiId: !Ref Api, Path: "/files/{proxy+}", Method: any}}
        Changed:
          Type: EventBridgeRule
          Properties:
            Pattern:
              source: [aws.states]
              detail: {stateMachineArn: [!Ref Flow], status: [FAILED]}
  ImageFunction:
    Type: AWS::Serverless::Function
    Properties:
      PackageType: Image
      ImageUri: 123.dkr.ecr.us-east-1.amazonaws.com/x:latest
  ItemsTable:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions:
        - {AttributeName: pk, AttributeType: S}
        - {AttributeName: gk, AttributeType: N}
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
      GlobalSecondaryIndexes:
        - IndexName: by-gk
          KeySchema: [{AttributeName: gk, KeyType: HASH}]
          Projection: {ProjectionType: ALL}
          ProvisionedThroughput: {ReadCapacityUnits: 1, WriteCapacityUnits: 1}
      TimeToLiveSpecification: {AttributeName: expires, Enabled: true}
  SimpleTable:
    Type: AWS::Serverless::SimpleTable
    Properties:
      TableName: simple-one
      PrimaryKey: {Name: key, Type: Number}
  DataBucket:
    Type: AWS::S3::Bucket
  Queue:
    Type: AWS::SQS::Queue
  TokenSecret:
    Type: AWS::SecretsManager::Secret
  Role:
    Type: AWS::IAM::Role
  Flow:
    Type: AWS::Serverless::StateMachine
    Properties:
      DefinitionUri: flow.asl.json
      DefinitionSubstitutions:
        GetThingArn: !GetAtt GetThing.Arn
        RoleArn: !GetAtt Role.Arn
"""

FLOW = {
    "StartAt": "A",
    "States": {
        "A": {"Type": "Task", "Resource": "${GetThingArn}", "Comment": "${Unknown} ${RoleArn}", "End": True}
    },
}


@pytest.fixture
def template(tmp_path: Path) -> Template:
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    (tmp_path / "flow.asl.json").write_text(json.dumps(FLOW))
    names = LocalNames(account_id="111122223333", region="eu-west-1", secret=SecretStore(tmp_path / "s.json"))
    return Template(tmp_path / "template.yaml", names)


def test_short_tags_load_as_intrinsic_functions(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "A: !Ref X\nB: !GetAtt Y.Arn\nC: !Sub 'x${Y}'\nD: !Join [',', [a, b]]\nE: !If [c, 1, 2]\n"
    )
    assert load_yaml(path) == {
        "A": {"Ref": "X"},
        "B": {"Fn::GetAtt": ["Y", "Arn"]},
        "C": {"Fn::Sub": "x${Y}"},
        "D": {"Fn::Join": [",", ["a", "b"]]},
        "E": {"Fn::If": ["c", 1, 2]},
    }


def test_environment_resolves_to_local_names(template: Template) -> None:
    env = template.functions()["GetThing"].environment
    assert env["TABLE"] == "ItemsTable"
    assert env["SIMPLE"] == "simple-one"
    assert env["BUCKET"] == "openlookout-local-databucket"
    assert env["ACCOUNT"] == "111122223333"
    assert env["REGION"] == "eu-west-1-x"
    assert env["LEVEL"] == "DEBUG"  # the function's own variables win over Globals
    assert env["MACHINE"] == env["MACHINE_REF"] == "arn:aws:states:eu-west-1:111122223333:stateMachine:Flow"
    assert env["JOINED"] == "a-INFO"
    assert "UNKNOWN" not in env  # no local meaning: left out rather than wrong
    assert len(env["SECRET"]) >= 32


def test_secret_is_generated_once_per_data_dir(tmp_path: Path, template: Template) -> None:
    first = template.functions()["GetThing"].environment["SECRET"]
    again = Template(template.path, LocalNames(secret=SecretStore(tmp_path / "s.json")))
    assert again.functions()["GetThing"].environment["SECRET"] == first
    other = Template(template.path, LocalNames(secret=SecretStore(tmp_path / "other.json")))
    assert other.functions()["GetThing"].environment["SECRET"] != first


def test_parameter_overrides(template: Template) -> None:
    overridden = Template(template.path, template.names, {"Level": "ERROR", "StageName": "prod"})
    assert overridden.environment_of("ImageFunction")["LEVEL"] == "ERROR"
    assert overridden.stage_names() == ["prod"]


def test_routes_binary_types_and_stage(template: Template) -> None:
    routes = {(r.method, r.path, r.function) for r in template.routes()}
    assert routes == {("GET", "/things/{name}", "GetThing"), ("ANY", "/files/{proxy+}", "GetThing")}
    assert template.binary_media_types() == ["image/png", "application/octet-stream"]
    assert template.stage_names() == ["v9"]


def test_functions_skip_images_and_read_code_uri_handler_timeout(template: Template, tmp_path: Path) -> None:
    functions = template.functions()
    assert set(functions) == {"GetThing"}
    function = functions["GetThing"]
    assert function.code_uri == (tmp_path / "fn" / "get").resolve()
    assert function.handler == "app.handler"
    assert function.timeout == 12
    assert function.event_rules == [
        {
            "source": ["aws.states"],
            "detail": {
                "stateMachineArn": ["arn:aws:states:eu-west-1:111122223333:stateMachine:Flow"],
                "status": ["FAILED"],
            },
        }
    ]


def test_tables_and_buckets(template: Template) -> None:
    tables = {t.name: t for t in template.tables()}
    items = tables["ItemsTable"]
    assert items.create_args["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert items.create_args["BillingMode"] == "PAY_PER_REQUEST"
    assert "ProvisionedThroughput" not in items.create_args["GlobalSecondaryIndexes"][0]
    assert items.ttl_attribute == "expires"
    simple = tables["simple-one"]
    assert simple.create_args["AttributeDefinitions"] == [{"AttributeName": "key", "AttributeType": "N"}]
    assert template.buckets() == ["openlookout-local-databucket"]


def test_state_machine_definition_is_substituted(template: Template) -> None:
    (machine,) = template.state_machines()
    assert machine.arn == "arn:aws:states:eu-west-1:111122223333:stateMachine:Flow"
    state = machine.definition["States"]["A"]
    assert state["Resource"] == "arn:aws:lambda:eu-west-1:111122223333:function:GetThing"
    assert state["Comment"] == "${Unknown} arn:aws:iam::111122223333:role/Role"


def test_overlay_adds_resources_relative_to_its_own_folder(template: Template, tmp_path: Path) -> None:
    overlay_dir = tmp_path / "extra"
    overlay_dir.mkdir()
    (overlay_dir / "t.yaml").write_text(
        "Resources:\n  Extra:\n    Type: AWS::Serverless::Function\n"
        "    Properties: {CodeUri: code/, Handler: app.h}\n"
    )
    combined = Template(template.path, template.names, overlays=[overlay_dir / "t.yaml"])
    functions = combined.functions()
    assert functions["Extra"].code_uri == (overlay_dir / "code").resolve()
    assert functions["Extra"].environment["TABLE"] == "ItemsTable"  # Globals still apply
    assert "GetThing" in functions


def test_substitute_leaves_unknown_placeholders() -> None:
    assert substitute({"a": ["${X}-${Y}"]}, {"X": 1}) == {"a": ["1-${Y}"]}


def test_the_project_template_resolves() -> None:
    template = Template(ROOT / "template.yaml")
    functions = template.functions()
    assert functions, "template.yaml has functions"
    for function in functions.values():
        assert (function.code_uri / (function.handler.rsplit(".", 1)[0] + ".py")).exists(), (
            function.logical_id
        )
        assert function.environment.get("PROJECTS_TABLE") == "ProjectsTable"
    assert {"image/png", "image/jpeg"} <= set(template.binary_media_types())
    for machine in template.state_machines():
        for resource in _task_resources(machine.definition):
            assert "${" not in resource, f"{machine.name}: unsubstituted {resource}"
            if resource.startswith("arn:aws:lambda:"):
                assert resource.rsplit(":", 1)[-1] in functions, f"{machine.name}: {resource}"


def _task_resources(definition: dict) -> list[str]:
    found = []
    for state in definition["States"].values():
        if "Resource" in state:
            found.append(state["Resource"])
        for branch in state.get("Branches", []):
            found += _task_resources(branch)
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            found += _task_resources(processor)
    return found


GLOBALS_TEMPLATE = """
Globals:
  Function:
    Runtime: python3.12
    Handler: app.handler
    Timeout: 20
    Layers: [!Ref SharedLayer]
    Environment: {Variables: {A: "1", B: !Ref SharedLayer}}
Resources:
  SharedLayer: {Type: AWS::Serverless::LayerVersion, Properties: {ContentUri: layer/}}
  Plain:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: fn/plain/}
  Own:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn/own/
      Handler: own.main
      Layers: [!Ref OtherLayer]
      Environment: {Variables: {B: !Sub "${AWS::Region}", C: "3"}}
  Image:
    Type: AWS::Serverless::Function
    IgnoreGlobals: [Runtime, Handler, Layers]
    Properties: {PackageType: Image, ImageConfig: {Command: [image.handler]}}
    Metadata: {Dockerfile: fn/image/Dockerfile}
"""


def test_globals_merge_as_sam_merges_them(tmp_path: Path) -> None:
    (tmp_path / "template.yaml").write_text(GLOBALS_TEMPLATE)
    template = Template(tmp_path / "template.yaml", LocalNames(secret=SecretStore(tmp_path / "s.json")))
    plain, own, image = (template.function_properties(name) for name in ("Plain", "Own", "Image"))
    assert (plain["Runtime"], plain["Handler"], plain["Layers"]) == (
        "python3.12",
        "app.handler",
        [{"Ref": "SharedLayer"}],
    )
    assert own["Handler"] == "own.main"  # the function's scalar wins
    assert own["Layers"] == [{"Ref": "SharedLayer"}, {"Ref": "OtherLayer"}]  # lists: Globals' first
    # Maps merge key by key; an intrinsic function is one value, never merged with another.
    assert own["Environment"]["Variables"] == {"A": "1", "B": {"Fn::Sub": "${AWS::Region}"}, "C": "3"}
    assert "Runtime" not in image and "Layers" not in image and image["Timeout"] == 20
    functions = template.functions()
    assert (functions["Plain"].handler, functions["Own"].handler, functions["Image"].handler) == (
        "app.handler",
        "own.main",
        "image.handler",
    )
    assert functions["Own"].environment == {"A": "1", "B": "us-east-1", "C": "3"}
