"""Datasets: create, describe, list and update entries, delete.

A dataset's entries live under a generation (DatasetEntryItem key "<project>/<type>#<generation>").
Imports and updates run in the dataset state machine (statemachines/dataset_import.asl.json), which
writes a new generation and switches the dataset to it in one conditional write, so readers see the
old content until the commit, and a failed import or update leaves nothing behind.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from pynamodb.exceptions import UpdateError

from openlookout.core.errors import ConflictException, ResourceNotFoundException, ResourceType
from openlookout.core.pagination import read_page
from openlookout.core.s3_names import check_location
from openlookout.lifecycles import dataset as lifecycle
from openlookout.lifecycles.dataset import (
    MESSAGES,
    DatasetEvent,
    DatasetStatus,
    Operation,
    dataset_id,
)
from openlookout.services.answers import (
    CreateDatasetAnswer,
    DescribeDatasetAnswer,
    Empty,
    ListDatasetEntriesAnswer,
    UpdateDatasetEntriesAnswer,
)
from openlookout.services.executions import StateMachine, execution_name, start_execution
from openlookout.services.projects import dataset_metadata, get_project
from openlookout.settings import settings
from openlookout.storage import s3
from openlookout.storage.conditions import lost_condition, refused_if_lost
from openlookout.storage.tables import DatasetEntryItem, DatasetItem, start_key

if TYPE_CHECKING:
    from mypy_boto3_lookoutvision.literals import DatasetStatusType

MAX_IMAGES = {"train": 16_000, "test": 4_000}  # L4V's limits per dataset type


def entries_key(project_name: str, dataset_type: str, generation: str) -> str:
    return f"{project_name}/{dataset_type}#{generation}"


def staging_prefix(project_name: str, dataset_type: str, generation: str) -> str:
    return f"staging/datasets/{project_name}/{dataset_type}/{generation}/"


def new_generation() -> str:
    # Time-ordered, so generations sort by age in the table and in S3; random, so they never collide.
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(4)}"


def _not_found(project_name: str, dataset_type: str) -> ResourceNotFoundException:
    return ResourceNotFoundException(
        f"The {dataset_type} dataset of project {project_name} does not exist.",
        dataset_id(project_name, dataset_type),
        ResourceType.DATASET,
    )


def get_dataset(project_name: str, dataset_type: str) -> DatasetItem:
    try:
        return DatasetItem.get(project_name, dataset_type, consistent_read=True)
    except DatasetItem.DoesNotExist:
        get_project(project_name)  # a missing project is reported as such
        raise _not_found(project_name, dataset_type) from None


# ------------------------------------------------------------------ workflow start


def start_workflow(payload: Mapping[str, Any]) -> str:
    """Starts the dataset state machine; returns the execution ARN. Tests replace this function."""
    name = execution_name(payload["Operation"], payload["DatasetType"], payload["ProjectName"])
    return start_execution(StateMachine.DATASET, name, payload)


def workflow_input(
    operation: Operation, item: DatasetItem, generation: str, source: Mapping[str, Any] | None
) -> dict[str, Any]:
    return {
        "Operation": str(operation),
        "ProjectName": item.project_name,
        "DatasetType": item.dataset_type,
        "Generation": generation,
        "Source": dict(source) if source else None,
    }


# ------------------------------------------------------------------ operations


def create_dataset(
    project_name: str, dataset_type: str, dataset_source: Mapping[str, Any] | None = None
) -> CreateDatasetAnswer:
    get_project(project_name)
    manifest = ((dataset_source or {}).get("GroundTruthManifest") or {}).get("S3Object")
    if manifest:
        check_location(str(manifest.get("Bucket", "")), str(manifest.get("Key", "")), "manifest")
    generation = new_generation()
    if manifest:
        status, pending, current = DatasetStatus.CREATE_IN_PROGRESS, generation, None
    else:  # no source: an empty dataset, complete at once (L4V does the same)
        status, pending, current = DatasetStatus.CREATE_COMPLETE, None, generation
    item = DatasetItem(
        project_name,
        dataset_type,
        status=str(status),
        status_message=MESSAGES[status],
        generation=current,
        pending_generation=pending,
    )
    duplicate = ConflictException(
        f"The {dataset_type} dataset of project {project_name} already exists.",
        dataset_id(project_name, dataset_type),
        ResourceType.DATASET,
    )
    with refused_if_lost(duplicate):
        item.save(condition=DatasetItem.dataset_type.does_not_exist())
    metadata = dataset_metadata(item)  # as created: the update below reads back what the workflow wrote since
    if manifest:
        source = {key: manifest.get(key) for key in ("Bucket", "Key", "VersionId")}
        try:
            execution_arn = start_workflow(workflow_input(Operation.CREATE, item, generation, source))
        except Exception:
            item.delete()  # nothing will ever finish this dataset; let the caller retry
            raise
        _record_execution(item, execution_arn)
    return {"DatasetMetadata": metadata}


def describe_dataset(project_name: str, dataset_type: str) -> DescribeDatasetAnswer:
    item = get_dataset(project_name, dataset_type)
    stats = item.image_stats
    return {
        "DatasetDescription": {
            "ProjectName": item.project_name,
            "DatasetType": item.dataset_type,
            "CreationTimestamp": item.created_at,
            "LastUpdatedTimestamp": item.updated_at,
            "Status": cast("DatasetStatusType", item.status),
            "StatusMessage": item.status_message,
            "ImageStats": {
                "Total": int(stats.total),
                "Labeled": int(stats.labeled),
                "Normal": int(stats.normal),
                "Anomaly": int(stats.anomaly),
            },
        }
    }


def delete_dataset(project_name: str, dataset_type: str) -> Empty:
    item = get_dataset(project_name, dataset_type)
    lifecycle.remove(item)
    # The entries go asynchronously: a new dataset of this type gets a new generation anyway.
    for generation in {item.generation, item.pending_generation} - {None}:
        start_workflow(workflow_input(Operation.DELETE, item, str(generation), None))
    return {}


def _record_execution(item: DatasetItem, execution_arn: str) -> None:
    # The execution may already have moved the dataset on: no version check, and never re-create it.
    try:
        item.update(
            actions=[DatasetItem.execution_arn.set(execution_arn)],
            condition=DatasetItem.dataset_type.exists(),
            add_version_condition=False,
        )
    except UpdateError as error:
        if not lost_condition(error):
            raise


def update_dataset_entries(
    project_name: str, dataset_type: str, changes: bytes
) -> UpdateDatasetEntriesAnswer:
    item = get_dataset(project_name, dataset_type)
    lifecycle.next_status(item, DatasetEvent.UPDATE)  # refused before anything is staged
    generation = new_generation()
    bucket = settings().artifacts_bucket
    changes_key = staging_prefix(project_name, dataset_type, generation) + "changes.jsonl"
    s3.put_text(bucket, changes_key, changes)  # Changes can be 10 MiB; a state machine input only 256 KB
    try:
        lifecycle.change(item, DatasetEvent.UPDATE, pending_generation=generation)
    except Exception:
        s3.delete_prefix(bucket, staging_prefix(project_name, dataset_type, generation))
        raise
    source = {"Bucket": bucket, "Key": changes_key}
    try:
        execution_arn = start_workflow(workflow_input(Operation.UPDATE, item, generation, source))
    except Exception:
        lifecycle.change(item, DatasetEvent.UPDATE_NOT_STARTED, lifecycle.UPDATE_NOT_STARTED_MESSAGE)
        raise
    _record_execution(item, execution_arn)
    return {"Status": cast("DatasetStatusType", str(DatasetStatus.UPDATE_IN_PROGRESS))}


def list_dataset_entries(
    project_name: str,
    dataset_type: str,
    labeled: bool | None = None,
    anomaly_class: str | None = None,
    created_before: datetime | None = None,
    created_after: datetime | None = None,
    source_ref_contains: str | None = None,
    next_token: str | None = None,
    max_results: int | None = None,
) -> ListDatasetEntriesAnswer:
    item = get_dataset(project_name, dataset_type)
    filters = {
        "labeled": labeled,
        "anomalyClass": anomaly_class,
        "createdBefore": created_before.isoformat() if created_before else None,
        "createdAfter": created_after.isoformat() if created_after else None,
        "sourceRefContains": source_ref_contains,
    }
    # The token is bound to the dataset and the filters: reusing it with other ones is a ValidationException.
    scope = "ListDatasetEntries:" + json.dumps([project_name, dataset_type, filters], sort_keys=True)
    condition = None
    for clause in (
        DatasetEntryItem.labeled == labeled if labeled is not None else None,
        DatasetEntryItem.anomaly_class == anomaly_class if anomaly_class else None,
        DatasetEntryItem.created_at < created_before if created_before else None,
        DatasetEntryItem.created_at > created_after if created_after else None,
    ):
        if clause is not None:
            condition = clause if condition is None else condition & clause

    def query(after: Any, _count: int) -> Iterator[DatasetEntryItem]:
        if item.generation is None:  # still being created
            return
        key = entries_key(project_name, dataset_type, item.generation)
        start = None if after is None else start_key(DatasetEntryItem, key, str(after))
        # DynamoDB applies filters after its own page limit: read_page reads on until one more than asked.
        for entry in DatasetEntryItem.query(
            key, filter_condition=condition, last_evaluated_key=start, consistent_read=True
        ):
            # DynamoDB refuses filters on key attributes, so the source-ref filter is applied here.
            if not source_ref_contains or source_ref_contains in entry.source_ref:
                yield entry

    page, more = read_page(scope, next_token, max_results, query, lambda entry: entry.source_ref)
    return {"DatasetEntries": [entry.entry for entry in page], **more}
