"""The PynamoDB models must describe exactly the tables that template.yaml creates."""

import pytest
from pynamodb.models import Model

from openlookout.storage.tables import ALL_TABLES
from tests.template_support import resources, template

_TYPES = {"S": "S", "N": "N", "B": "B"}
_ENV_FOR = {}
for _variable, _value in template()["Globals"]["Function"]["Environment"]["Variables"].items():
    if isinstance(_value, dict) and "Ref" in _value:
        _ENV_FOR[_value["Ref"]] = _variable


def _model_key_schema(model: type[Model]) -> dict[str, tuple[str, str]]:
    schema = {}
    for attribute in model.get_attributes().values():
        if attribute.is_hash_key:
            schema["HASH"] = (attribute.attr_name, attribute.attr_type)
        if attribute.is_range_key:
            schema["RANGE"] = (attribute.attr_name, attribute.attr_type)
    return schema


def _template_key_schema(logical_id: str) -> dict[str, tuple[str, str]]:
    props = resources("AWS::DynamoDB::Table")[logical_id]["Properties"]
    types = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    return {k["KeyType"]: (k["AttributeName"], types[k["AttributeName"]]) for k in props["KeySchema"]}


@pytest.mark.parametrize("model", ALL_TABLES, ids=lambda m: m.__name__)
def test_model_keys_match_template(model: type[Model]):
    tables = resources("AWS::DynamoDB::Table")
    # conftest sets each *_TABLE variable to the table's logical id, as `openlookout serve` does.
    logical_id = model.Meta.table_name
    assert logical_id in tables, f"{model.__name__} uses {logical_id}, which template.yaml does not define"
    assert logical_id in _ENV_FOR, f"no Globals environment variable refers to {logical_id}"
    assert _model_key_schema(model) == _template_key_schema(logical_id)


def test_every_template_table_has_a_model_or_is_the_idempotency_store():
    modelled = {model.Meta.table_name for model in ALL_TABLES}
    for logical_id in resources("AWS::DynamoDB::Table"):
        assert logical_id in modelled or logical_id == "IdempotencyTable"


def test_idempotency_table_matches_powertools_defaults():
    # Powertools' DynamoDBPersistenceLayer uses "id" as key and "expiration" as TTL attribute.
    assert _template_key_schema("IdempotencyTable") == {"HASH": ("id", "S")}
    props = resources("AWS::DynamoDB::Table")["IdempotencyTable"]["Properties"]
    assert props["TimeToLiveSpecification"]["AttributeName"] == "expiration"


def test_a_start_key_is_the_items_keys_in_dynamodbs_typed_form() -> None:
    from openlookout.storage.tables import DatasetEntryItem, ModelItem, start_key

    assert start_key(ModelItem, "widgets", 3) == {"ProjectName": {"S": "widgets"}, "ModelVersion": {"N": "3"}}
    assert start_key(DatasetEntryItem, "k", "s3://b/a.png") == {
        "DatasetKey": {"S": "k"},
        "SourceRef": {"S": "s3://b/a.png"},
    }
