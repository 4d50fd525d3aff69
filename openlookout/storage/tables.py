"""PynamoDB models of the service's DynamoDB tables.

Table names come from the settings (the environment that template.yaml sets), read when a table
is first used, not when this module is imported; the region, as for every boto3 client here, comes
from the environment through botocore (AWS_DEFAULT_REGION). The key schemas here must
equal the template's (tests/unit/test_storage_schema.py checks it), since the template is
what creates the tables, in AWS and in `openlookout serve` alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)
from pynamodb.models import Model

from openlookout.settings import settings


class _TableName(type):
    """The metaclass of a model's Meta: its table name is looked up in the settings on each use."""

    setting: str

    @property
    def table_name(cls) -> str:
        return str(getattr(settings(), cls.setting))


def utcnow() -> datetime:
    return datetime.now(UTC)


Item = TypeVar("Item", bound=Model)


def partition_reader(
    model: type[Item], hash_key: Any, **options: Any
) -> Callable[[Any, int], Iterable[Item]]:
    """The query that core.pagination.read_page pages through: one partition's items after a range
    key (None: from the start), `count` at a time."""

    def query(after: Any, count: int) -> Iterable[Item]:
        start = None if after is None else start_key(model, hash_key, after)
        return model.query(hash_key, limit=count, last_evaluated_key=start, **options)

    return query


def start_key(model: type[Model], hash_key: Any, range_key: Any) -> dict[str, dict[str, Any]]:
    """A Query's ExclusiveStartKey (PynamoDB's `last_evaluated_key`): the keys of the item to read
    after, in DynamoDB's typed form, from the model's own key attributes."""
    key: dict[str, dict[str, Any]] = {}
    for attribute in model.get_attributes().values():
        if attribute.is_hash_key or attribute.is_range_key:
            value = hash_key if attribute.is_hash_key else range_key
            key[attribute.attr_name] = {attribute.attr_type: attribute.serialize(value)}
    return key


class ProjectItem(Model):
    """A project. One partition per account keeps ListProjects a sorted Query."""

    class Meta(metaclass=_TableName):
        setting = "projects_table"

    account_id = UnicodeAttribute(hash_key=True, attr_name="AccountId")
    project_name = UnicodeAttribute(range_key=True, attr_name="ProjectName")
    project_arn = UnicodeAttribute(attr_name="ProjectArn")
    created_at = UTCDateTimeAttribute(attr_name="CreationTimestamp", default=utcnow)
    # Atomically incremented by CreateModel: versions are never reused, even under concurrent calls.
    model_version_counter = NumberAttribute(attr_name="ModelVersionCounter", default=0)


class ImageStats(MapAttribute[str, int]):
    total = NumberAttribute(attr_name="Total", default=0)
    labeled = NumberAttribute(attr_name="Labeled", default=0)
    normal = NumberAttribute(attr_name="Normal", default=0)
    anomaly = NumberAttribute(attr_name="Anomaly", default=0)


class DatasetItem(Model):
    """The train or test dataset of a project, with its life-cycle status."""

    class Meta(metaclass=_TableName):
        setting = "datasets_table"

    project_name = UnicodeAttribute(hash_key=True, attr_name="ProjectName")
    dataset_type = UnicodeAttribute(range_key=True, attr_name="DatasetType")
    status = UnicodeAttribute(attr_name="Status")
    status_message = UnicodeAttribute(attr_name="StatusMessage", null=True)
    created_at = UTCDateTimeAttribute(attr_name="CreationTimestamp", default=utcnow)
    updated_at = UTCDateTimeAttribute(attr_name="LastUpdatedTimestamp", default=utcnow)
    image_stats = ImageStats(attr_name="ImageStats", default=ImageStats)
    execution_arn = UnicodeAttribute(attr_name="ExecutionArn", null=True)
    # Entries live under a generation; an import writes a new one and the commit switches to it,
    # so a failed import or update leaves the current generation exactly as it was.
    generation = UnicodeAttribute(attr_name="Generation", null=True)
    pending_generation = UnicodeAttribute(attr_name="PendingGeneration", null=True)
    images_bucket = UnicodeAttribute(attr_name="ImagesBucket", null=True)  # L4V: one bucket per dataset
    version = VersionAttribute(attr_name="Version")


class DatasetEntryItem(Model):
    """One JSON Lines entry of a dataset generation, keyed by its image (source-ref)."""

    class Meta(metaclass=_TableName):
        setting = "dataset_entries_table"

    dataset_key = UnicodeAttribute(hash_key=True, attr_name="DatasetKey")  # "<project>/<type>#<generation>"
    source_ref = UnicodeAttribute(range_key=True, attr_name="SourceRef")
    entry = UnicodeAttribute(attr_name="Entry")
    labeled = BooleanAttribute(attr_name="Labeled", default=False)
    anomaly_class = UnicodeAttribute(attr_name="AnomalyClass", null=True)
    created_at = UTCDateTimeAttribute(attr_name="CreationTimestamp", default=utcnow)
    width = NumberAttribute(attr_name="Width", null=True)
    height = NumberAttribute(attr_name="Height", null=True)


class ModelItem(Model):
    """A model version of a project: life cycle, training output, hosting settings and tags."""

    class Meta(metaclass=_TableName):
        setting = "models_table"

    project_name = UnicodeAttribute(hash_key=True, attr_name="ProjectName")
    model_version = NumberAttribute(range_key=True, attr_name="ModelVersion")
    model_arn = UnicodeAttribute(attr_name="ModelArn")
    status = UnicodeAttribute(attr_name="Status")
    status_message = UnicodeAttribute(attr_name="StatusMessage", null=True)
    description = UnicodeAttribute(attr_name="Description", null=True)
    created_at = UTCDateTimeAttribute(attr_name="CreationTimestamp", default=utcnow)
    output_bucket = UnicodeAttribute(attr_name="OutputBucket", null=True)
    output_prefix = UnicodeAttribute(attr_name="OutputPrefix", null=True)
    kms_key_id = UnicodeAttribute(attr_name="KmsKeyId", null=True)
    performance = JSONAttribute(attr_name="Performance", null=True)  # {"F1Score", "Recall", "Precision"}
    evaluation_manifest_key = UnicodeAttribute(attr_name="EvaluationManifestKey", null=True)
    evaluation_result_key = UnicodeAttribute(attr_name="EvaluationResultKey", null=True)
    evaluation_end = UTCDateTimeAttribute(attr_name="EvaluationEndTimestamp", null=True)
    artifact_prefix = UnicodeAttribute(attr_name="ArtifactPrefix", null=True)  # in the artifacts bucket
    min_inference_units = NumberAttribute(attr_name="MinInferenceUnits", null=True)
    max_inference_units = NumberAttribute(attr_name="MaxInferenceUnits", null=True)
    execution_arn = UnicodeAttribute(attr_name="ExecutionArn", null=True)
    tags = MapAttribute[str, str](attr_name="Tags", default=dict)
    version = VersionAttribute(attr_name="Version")


class ModelPackagingJobItem(Model):
    """A model packaging job (StartModelPackagingJob): CREATED -> RUNNING -> SUCCEEDED | FAILED."""

    class Meta(metaclass=_TableName):
        setting = "model_packaging_jobs_table"

    project_name = UnicodeAttribute(hash_key=True, attr_name="ProjectName")
    job_name = UnicodeAttribute(range_key=True, attr_name="JobName")
    model_version = NumberAttribute(attr_name="ModelVersion")
    description = UnicodeAttribute(attr_name="Description", null=True)
    configuration = JSONAttribute(attr_name="Configuration")  # ModelPackagingConfiguration, as given
    method = UnicodeAttribute(attr_name="Method", default="Greengrass")
    status = UnicodeAttribute(attr_name="Status")
    status_message = UnicodeAttribute(attr_name="StatusMessage", null=True)
    created_at = UTCDateTimeAttribute(attr_name="CreationTimestamp", default=utcnow)
    updated_at = UTCDateTimeAttribute(attr_name="LastUpdatedTimestamp", default=utcnow)
    output = JSONAttribute(attr_name="Output", null=True)  # GreengrassOutputDetails once SUCCEEDED
    execution_arn = UnicodeAttribute(attr_name="ExecutionArn", null=True)
    version = VersionAttribute(attr_name="Version")


ALL_TABLES: tuple[type[Model], ...] = (
    ProjectItem,
    DatasetItem,
    DatasetEntryItem,
    ModelItem,
    ModelPackagingJobItem,
)
