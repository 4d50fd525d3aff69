"""Reads template.yaml the way `openlookout serve` needs it: functions, routes, tables, buckets,
state machines, and every function's environment resolved to local values.

The template is the one source of truth: nothing here knows the project's resource names.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from openlookout.settings import DEFAULT_REGION

log = logging.getLogger("serve.template")

PSEUDO_URL_SUFFIX = "amazonaws.com"

# Resource types whose `!Ref` names a table, a bucket, a state machine, a function.
TABLE_TYPES = ("AWS::DynamoDB::Table", "AWS::Serverless::SimpleTable")
BUCKET_TYPES = ("AWS::S3::Bucket",)
STATE_MACHINE_TYPES = ("AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine")
FUNCTION_TYPES = ("AWS::Serverless::Function",)


class UnresolvableError(ValueError):
    """A template value that has no local meaning (e.g. `!GetAtt SomeQueue.Url`)."""


# ---------------------------------------------------------------- YAML with CloudFormation tags


class CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns `!Ref X` into {"Ref": X} and `!Foo v` into {"Fn::Foo": v}."""


def _construct_tag(loader: CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


CfnLoader.add_multi_constructor("!", _construct_tag)


def load_yaml(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as stream:
        document = yaml.load(stream, Loader=CfnLoader)
    if not isinstance(document, dict):
        raise ValueError(f"{path} is not a CloudFormation template")
    return document


# ---------------------------------------------------------------- the model of a template


@dataclass(frozen=True)
class Route:
    method: str  # upper case, or ANY
    path: str  # API Gateway resource path: /2020-11-20/projects/{projectName}
    function: str  # logical id

    @property
    def segments(self) -> list[str]:
        return [s for s in self.path.split("/") if s]


@dataclass
class Function:
    logical_id: str
    code_uri: Path
    handler: str
    timeout: float
    environment: dict[str, str]
    routes: list[Route] = field(default_factory=list)
    event_rules: list[dict[str, Any]] = field(default_factory=list)  # EventBridge patterns

    @property
    def name(self) -> str:
        return self.logical_id


@dataclass
class Table:
    logical_id: str
    name: str
    create_args: dict[str, Any]
    ttl_attribute: str | None = None


@dataclass
class StateMachine:
    logical_id: str
    name: str
    arn: str
    definition: dict[str, Any]


@dataclass
class LocalNames:
    """How template resources are named locally; computed once, then used by every `!Ref`."""

    account_id: str = "000000000000"
    region: str = DEFAULT_REGION
    stack_name: str = "openlookout-local"
    secret: Callable[[str], str] = lambda key: "local-secret"


class Template:
    def __init__(
        self,
        path: Path,
        names: LocalNames | None = None,
        parameter_overrides: Mapping[str, str] | None = None,
        overlays: list[Path] | None = None,
    ) -> None:
        self.path = Path(path).resolve()
        self.root = self.path.parent
        self.document = load_yaml(self.path)
        self.names = names or LocalNames()
        self.resources: dict[str, dict[str, Any]] = dict(self.document.get("Resources") or {})
        self.parameters: dict[str, Any] = {}
        for name, spec in (self.document.get("Parameters") or {}).items():
            self.parameters[name] = (spec or {}).get("Default")
        # Overlays add or replace resources (e.g. a test-only state machine); their relative
        # CodeUri/DefinitionUri paths are relative to the overlay file, as SAM would read them.
        self._roots: dict[str, Path] = {}
        for overlay in overlays or []:
            overlay = Path(overlay).resolve()
            document = load_yaml(overlay)
            for name, spec in (document.get("Parameters") or {}).items():
                self.parameters[name] = (spec or {}).get("Default")
            for logical_id, resource in (document.get("Resources") or {}).items():
                self.resources[logical_id] = resource
                self._roots[logical_id] = overlay.parent
        self.parameters.update(parameter_overrides or {})

    def root_of(self, logical_id: str) -> Path:
        return self._roots.get(logical_id, self.root)

    # ------------------------------------------------------------ resources by kind

    def of_type(self, *types: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v.get("Type") in types}

    def _props(self, logical_id: str) -> dict[str, Any]:
        return self.resources[logical_id].get("Properties") or {}

    def table_name(self, logical_id: str) -> str:
        name = self._props(logical_id).get("TableName")
        return name if isinstance(name, str) else logical_id

    def bucket_name(self, logical_id: str) -> str:
        name = self._props(logical_id).get("BucketName")
        if isinstance(name, str):
            return name
        # Bucket names must be lower case DNS labels; logical ids are CamelCase.
        return re.sub(r"[^a-z0-9-]", "-", f"{self.names.stack_name}-{logical_id}".lower())[:63]

    def state_machine_name(self, logical_id: str) -> str:
        props = self._props(logical_id)
        name = props.get("Name") or props.get("StateMachineName")
        return name if isinstance(name, str) else logical_id

    def state_machine_arn(self, logical_id: str) -> str:
        n = self.names
        return f"arn:aws:states:{n.region}:{n.account_id}:stateMachine:{self.state_machine_name(logical_id)}"

    def function_arn(self, logical_id: str) -> str:
        n = self.names
        return f"arn:aws:lambda:{n.region}:{n.account_id}:function:{logical_id}"

    # ------------------------------------------------------------ intrinsic functions

    def ref(self, name: str) -> str:
        n = self.names
        pseudo = {
            "AWS::AccountId": n.account_id,
            "AWS::Region": n.region,
            "AWS::StackName": n.stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{n.region}:{n.account_id}:stack/{n.stack_name}/local",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": PSEUDO_URL_SUFFIX,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            value = self.parameters[name]
            if value is None:
                raise UnresolvableError(f"parameter {name} has no Default")
            return ",".join(map(str, value)) if isinstance(value, list) else str(value)
        resource = self.resources.get(name)
        if resource is None:
            raise UnresolvableError(f"!Ref {name}: no such parameter or resource")
        kind = resource.get("Type", "")
        if kind in TABLE_TYPES:
            return self.table_name(name)
        if kind in BUCKET_TYPES:
            return self.bucket_name(name)
        if kind in STATE_MACHINE_TYPES:
            return self.state_machine_arn(name)
        if kind in FUNCTION_TYPES:
            return name
        if kind == "AWS::SecretsManager::Secret":
            return f"arn:aws:secretsmanager:{n.region}:{n.account_id}:secret:{name}"
        if kind in ("AWS::Serverless::Api", "AWS::ApiGateway::RestApi"):
            return "local"
        return name

    def get_att(self, name: str, attribute: str) -> str:
        resource = self.resources.get(name)
        if resource is None:
            raise UnresolvableError(f"!GetAtt {name}.{attribute}: no such resource")
        kind = resource.get("Type", "")
        if kind in STATE_MACHINE_TYPES:
            return {"Arn": self.state_machine_arn(name), "Name": self.state_machine_name(name)}[attribute]
        if kind in FUNCTION_TYPES and attribute == "Arn":
            return self.function_arn(name)
        if kind in TABLE_TYPES and attribute == "Arn":
            n = self.names
            return f"arn:aws:dynamodb:{n.region}:{n.account_id}:table/{self.table_name(name)}"
        if kind in BUCKET_TYPES:
            bucket = self.bucket_name(name)
            if attribute == "Arn":
                return f"arn:aws:s3:::{bucket}"
            if attribute in ("DomainName", "RegionalDomainName"):
                return f"{bucket}.s3.{self.names.region}.{PSEUDO_URL_SUFFIX}"
        if attribute == "Arn":
            # A plausible ARN for anything else (IAM roles, queues...): only ever compared or passed on.
            n = self.names
            if kind == "AWS::IAM::Role":
                return f"arn:aws:iam::{n.account_id}:role/{name}"
            service = kind.split("::")[1].lower() if kind.count("::") == 2 else "local"
            return f"arn:aws:{service}:{n.region}:{n.account_id}:{name}"
        raise UnresolvableError(f"!GetAtt {name}.{attribute} has no local value")

    def resolve(self, value: Any) -> Any:
        """Evaluates intrinsic functions in `value`; raises UnresolvableError where it can't."""
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                parts = arg.split(".", 1) if isinstance(arg, str) else arg
                return self.get_att(str(parts[0]), str(self.resolve(parts[1])))
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::Join":
                separator, items = arg
                return str(separator).join(str(self.resolve(i)) for i in self.resolve(items))
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::Split":
                separator, text = arg
                return str(self.resolve(text)).split(separator)
            if key == "Fn::If":
                raise UnresolvableError("conditions are not evaluated locally")
            if key.startswith("Fn::"):
                raise UnresolvableError(f"{key} is not supported locally")
        return {k: self.resolve(v) for k, v in value.items()}

    def _sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = arg[0], {k: self.resolve(v) for k, v in (arg[1] or {}).items()}
        else:
            text, variables = arg, {}

        def replace(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression.startswith("!"):
                return "${" + expression[1:] + "}"  # ${!Literal}
            if expression in variables:
                return str(variables[expression])
            if "." in expression and not expression.startswith("AWS::"):
                resource, attribute = expression.split(".", 1)
                return self.get_att(resource, attribute)
            return self.ref(expression)

        return resolve_dynamic_references(re.sub(r"\$\{([^}]+)\}", replace, text), self.names.secret)

    # ------------------------------------------------------------ what `serve` needs

    def globals_function(self) -> dict[str, Any]:
        return ((self.document.get("Globals") or {}).get("Function")) or {}

    def function_properties(self, logical_id: str) -> dict[str, Any]:
        """A function's properties with the Globals merged in as SAM does, IgnoreGlobals included."""
        resource = self.resources[logical_id]
        defaults = dict(self.globals_function())
        ignored = resource.get("IgnoreGlobals")
        for key in list(defaults) if ignored == "*" else ignored if isinstance(ignored, list) else []:
            defaults.pop(key, None)
        return dict(merge_globals(defaults, resource.get("Properties") or {}))

    def environment_of(self, logical_id: str) -> dict[str, str]:
        """Globals' variables overlaid by the function's own; unresolvable values are left out."""
        raw = (self.function_properties(logical_id).get("Environment") or {}).get("Variables") or {}
        env: dict[str, str] = {}
        for key, value in raw.items():
            try:
                resolved = self.resolve(value)
            except (UnresolvableError, KeyError, IndexError, TypeError, ValueError):
                continue
            env[key] = json.dumps(resolved) if isinstance(resolved, dict | list) else str(resolved)
        return env

    def functions(self) -> dict[str, Function]:
        result: dict[str, Function] = {}
        for logical_id, resource in self.of_type(*FUNCTION_TYPES).items():
            props = self.function_properties(logical_id)
            code_uri, handler = props.get("CodeUri"), props.get("Handler")
            if props.get("PackageType") == "Image":
                # No containers here: run the image's CMD handler from its Dockerfile's folder,
                # which is where the handler file is copied from (needs its packages in this venv).
                dockerfile = (resource.get("Metadata") or {}).get("Dockerfile")
                command = (props.get("ImageConfig") or {}).get("Command") or []
                code_uri = str(Path(dockerfile).parent) if isinstance(dockerfile, str) else None
                handler = command[0] if command else None
            if not isinstance(code_uri, str) or not isinstance(handler, str):
                continue  # S3 code or an image without a Dockerfile here: nothing to import locally
            function = Function(
                logical_id=logical_id,
                code_uri=(self.root_of(logical_id) / code_uri).resolve(),
                handler=handler,
                timeout=float(props.get("Timeout", 3)),
                environment=self.environment_of(logical_id),
            )
            for event in (props.get("Events") or {}).values():
                kind = event.get("Type")
                ev_props = event.get("Properties") or {}
                if kind in ("Api", "HttpApi") and isinstance(ev_props.get("Path"), str):
                    method = str(ev_props.get("Method", "ANY")).upper()
                    function.routes.append(Route(method, ev_props["Path"], logical_id))
                elif kind in ("EventBridgeRule", "CloudWatchEvent") and "Pattern" in ev_props:
                    try:
                        function.event_rules.append(self.resolve(ev_props["Pattern"]))
                    except UnresolvableError:
                        continue
            result[logical_id] = function
        return result

    def routes(self) -> list[Route]:
        return [route for function in self.functions().values() for route in function.routes]

    def _api_properties(self) -> list[dict[str, Any]]:
        apis = self.of_type("AWS::Serverless::Api")
        globals_api = (self.document.get("Globals") or {}).get("Api") or {}
        return [globals_api] + [resource.get("Properties") or {} for resource in apis.values()]

    def binary_media_types(self) -> list[str]:
        types: list[str] = []
        for props in self._api_properties():
            for item in props.get("BinaryMediaTypes") or []:
                try:
                    types.append(str(self.resolve(item)).replace("~1", "/"))
                except UnresolvableError:
                    continue
        return types

    def stage_names(self) -> list[str]:
        stages: list[str] = []
        for props in self._api_properties():
            if "StageName" in props:
                try:
                    stages.append(str(self.resolve(props["StageName"])))
                except UnresolvableError:
                    continue
        return stages

    def tables(self) -> list[Table]:
        result = []
        for logical_id, resource in self.of_type(*TABLE_TYPES).items():
            props = resource.get("Properties") or {}
            name = self.table_name(logical_id)
            args: dict[str, Any]
            if resource["Type"] == "AWS::Serverless::SimpleTable":
                key = props.get("PrimaryKey") or {"Name": "id", "Type": "String"}
                kind = {"String": "S", "Number": "N", "Binary": "B"}[key.get("Type", "String")]
                args = {
                    "TableName": name,
                    "KeySchema": [{"AttributeName": key["Name"], "KeyType": "HASH"}],
                    "AttributeDefinitions": [{"AttributeName": key["Name"], "AttributeType": kind}],
                }
            else:
                args = {
                    "TableName": name,
                    "KeySchema": props["KeySchema"],
                    "AttributeDefinitions": props["AttributeDefinitions"],
                }
                for index_kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
                    if props.get(index_kind):
                        indexes = [
                            {k: v for k, v in index.items() if k != "ProvisionedThroughput"}
                            for index in props[index_kind]
                        ]
                        args[index_kind] = indexes
                if props.get("StreamSpecification"):
                    args["StreamSpecification"] = {
                        "StreamEnabled": True,
                        "StreamViewType": props["StreamSpecification"]["StreamViewType"],
                    }
            args["BillingMode"] = "PAY_PER_REQUEST"
            ttl = props.get("TimeToLiveSpecification") or {}
            ttl_attribute = ttl.get("AttributeName") if ttl.get("Enabled") else None
            result.append(Table(logical_id, name, args, ttl_attribute))
        return result

    def buckets(self) -> list[str]:
        return [self.bucket_name(logical_id) for logical_id in self.of_type(*BUCKET_TYPES)]

    def state_machines(self) -> list[StateMachine]:
        result = []
        for logical_id, resource in self.of_type(*STATE_MACHINE_TYPES).items():
            props = resource.get("Properties") or {}
            if "DefinitionUri" in props and isinstance(props["DefinitionUri"], str):
                text = (self.root_of(logical_id) / props["DefinitionUri"]).read_text(encoding="utf-8")
                definition = yaml.load(text, Loader=CfnLoader)
            elif "Definition" in props:
                definition = props["Definition"]
            elif "DefinitionString" in props:
                definition = json.loads(self.resolve(props["DefinitionString"]))
            else:
                continue
            substitutions = {}
            for key, value in (props.get("DefinitionSubstitutions") or {}).items():
                try:
                    substitutions[key] = self.resolve(value)
                except UnresolvableError as error:
                    log.warning("%s: substitution %s left as is: %s", logical_id, key, error)
            definition = substitute(definition, substitutions)
            result.append(
                StateMachine(
                    logical_id=logical_id,
                    name=self.state_machine_name(logical_id),
                    arn=self.state_machine_arn(logical_id),
                    definition=definition,
                )
            )
        return result


def _is_intrinsic(value: Any) -> bool:
    """`{"Ref": ...}` or `{"Fn::Sub": ...}`: one value to SAM, never merged key by key."""
    if not isinstance(value, dict) or len(value) != 1:
        return False
    key = str(next(iter(value)))
    return key == "Ref" or key.startswith("Fn::")


def merge_globals(global_value: Any, local_value: Any) -> Any:
    """SAM's merge of Globals into a resource: maps key by key, lists as the Globals' items followed
    by the resource's; anything else (an intrinsic function too) is the resource's own value."""
    if isinstance(global_value, list) and isinstance(local_value, list):
        return global_value + local_value
    if not isinstance(global_value, dict) or not isinstance(local_value, dict):
        return local_value
    if _is_intrinsic(global_value) or _is_intrinsic(local_value):
        return local_value
    merged = dict(global_value)
    for key, value in local_value.items():
        merged[key] = merge_globals(global_value[key], value) if key in global_value else value
    return merged


def substitute(value: Any, substitutions: Mapping[str, Any]) -> Any:
    """Applies SAM's DefinitionSubstitutions (`${Name}` in any string of the ASL document)."""
    if isinstance(value, dict):
        return {k: substitute(v, substitutions) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, substitutions) for v in value]
    if isinstance(value, str) and "${" in value:

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            return str(substitutions[name]) if name in substitutions else match.group(0)

        return re.sub(r"\$\{([^}]+)\}", replace, value)
    return value


_DYNAMIC_REFERENCE = re.compile(r"\{\{resolve:secretsmanager:(.+?)(?::SecretString(?::[^}]*)?)?\}\}")


def resolve_dynamic_references(text: str, secret: Callable[[str], str]) -> str:
    """`{{resolve:secretsmanager:<id>:SecretString}}` becomes a local secret for <id>."""

    def replace(match: re.Match[str]) -> str:
        secret_id = match.group(1)
        if secret_id.startswith("arn:"):
            secret_id = secret_id.split(":secret:", 1)[-1]  # our ARNs end with the logical id
        return secret(secret_id)

    if "{{resolve:ssm" in text:
        raise UnresolvableError("SSM parameters have no local value")
    return _DYNAMIC_REFERENCE.sub(replace, text)


class SecretStore:
    """Random secrets generated once per data dir, so tokens stay valid across restarts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._values: dict[str, str] = {}
        if path.exists():
            self._values = json.loads(path.read_text(encoding="utf-8"))

    def __call__(self, key: str) -> str:
        if key not in self._values:
            self._values[key] = secrets.token_urlsafe(36)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self._values, indent=1), encoding="utf-8")
            self.path.chmod(0o600)
        return self._values[key]
