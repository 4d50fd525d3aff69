"""Models: versions, training, hosting, deletion — L4V's life cycle on our state machines.

The statuses, their transitions and messages, and how a status is written belong to
openlookout/lifecycles/model.py; a lost race there is a ConflictException.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from openlookout.core.arns import model_arn
from openlookout.core.artifacts import model_artifact_prefix
from openlookout.core.errors import (
    ConflictException,
    ResourceNotFoundException,
    ResourceType,
    ServiceQuotaExceededException,
    ValidationException,
)
from openlookout.core.pagination import read_page
from openlookout.core.s3_names import check_location
from openlookout.lifecycles import model as lifecycle
from openlookout.lifecycles.dataset import UPDATABLE
from openlookout.lifecycles.model import MESSAGES, ModelEvent, ModelStatus
from openlookout.services.answers import (
    CreateModelAnswer,
    DeleteModelAnswer,
    DescribeModelAnswer,
    ListModelsAnswer,
    StartModelAnswer,
    StopModelAnswer,
    structure,
)
from openlookout.services.executions import StateMachine, execution_arn, execution_name, start_execution
from openlookout.services.projects import get_project, project_not_found
from openlookout.settings import settings
from openlookout.storage import s3
from openlookout.storage.conditions import refused_if_lost
from openlookout.storage.tables import DatasetItem, ModelItem, ProjectItem, partition_reader

if TYPE_CHECKING:
    from mypy_boto3_lookoutvision.literals import ModelHostingStatusType
    from mypy_boto3_lookoutvision.type_defs import ModelDescriptionTypeDef, ModelMetadataTypeDef

INFERENCE_UNITS_QUOTA_CODE = "L-INFERENCE-UNITS"


# Datasets that can be trained on: complete, or rolled back to a complete state.
USABLE_DATASET_STATUSES = UPDATABLE
MIN_NORMAL_TRAINING_IMAGES = 10  # L4V's minimum for a train dataset


# ------------------------------------------------------------------ lookups


def _not_found(project_name: str, version: str | int) -> ResourceNotFoundException:
    return ResourceNotFoundException(
        f"The model version {version} of project {project_name} does not exist.",
        model_arn(project_name, version),
        ResourceType.MODEL,
    )


def get_model(project_name: str, model_version: str | int) -> ModelItem:
    """Resolves a version number or `latest` (the highest existing version) to its item."""
    if str(model_version) == "latest":
        get_project(project_name)
        latest = list(ModelItem.query(project_name, scan_index_forward=False, limit=1, consistent_read=True))
        if not latest:
            raise _not_found(project_name, "latest")
        return latest[0]
    try:
        return ModelItem.get(project_name, int(model_version), consistent_read=True)
    except ModelItem.DoesNotExist:
        get_project(project_name)  # an unknown project is reported as such
        raise _not_found(project_name, model_version) from None


def _version_text(item: ModelItem) -> str:
    return str(int(item.model_version))


def _metadata(item: ModelItem) -> ModelMetadataTypeDef:
    return structure(
        {
            "CreationTimestamp": item.created_at,
            "ModelVersion": _version_text(item),
            "ModelArn": item.model_arn,
            "Description": item.description,
            "Status": item.status,
            "StatusMessage": item.status_message,
            "Performance": item.performance,
        }
    )


def _location(bucket: str | None, key: str | None) -> dict[str, str] | None:
    return {"Bucket": bucket, "Key": key} if bucket and key else None


def describe(item: ModelItem) -> ModelDescriptionTypeDef:
    description = {
        **_metadata(item),
        "OutputConfig": {"S3Location": {"Bucket": item.output_bucket, "Prefix": item.output_prefix or ""}},
        "EvaluationManifest": _location(item.output_bucket, item.evaluation_manifest_key),
        "EvaluationResult": _location(item.output_bucket, item.evaluation_result_key),
        "EvaluationEndTimestamp": item.evaluation_end,
        "KmsKeyId": item.kms_key_id,
        "MinInferenceUnits": item.min_inference_units,
        "MaxInferenceUnits": item.max_inference_units,
    }
    if item.output_bucket is None:
        description.pop("OutputConfig")
    return structure(description)


# ------------------------------------------------------------------ workflows


# ------------------------------------------------------------------ operations


def _training_datasets(project_name: str) -> dict[str, DatasetItem]:
    datasets = {d.dataset_type: d for d in DatasetItem.query(project_name, consistent_read=True)}
    train = datasets.get("train")
    if train is None:
        raise ValidationException(
            f"The project {project_name} has no train dataset. Create one with CreateDataset first."
        )
    for dataset in datasets.values():
        if dataset.status not in USABLE_DATASET_STATUSES:
            raise ConflictException(
                f"The {dataset.dataset_type} dataset of project {project_name} is {dataset.status}; "
                "wait until it is complete.",
                f"{project_name}/{dataset.dataset_type}",
                ResourceType.DATASET,
            )
    normal = int(train.image_stats.normal or 0)
    if normal < MIN_NORMAL_TRAINING_IMAGES:
        raise ValidationException(
            f"The train dataset of project {project_name} has {normal} images labeled normal; "
            f"training needs at least {MIN_NORMAL_TRAINING_IMAGES}."
        )
    return datasets


def _next_version(project_name: str) -> int:
    project = get_project(project_name)
    with refused_if_lost(project_not_found(project_name)):
        project.update(
            actions=[ProjectItem.model_version_counter.add(1)],
            condition=ProjectItem.project_name.exists(),
        )
    return int(project.model_version_counter)


def create_model(
    project_name: str,
    output_config: Mapping[str, Any],
    description: str | None = None,
    kms_key_id: str | None = None,
    tags: Sequence[Mapping[str, str]] = (),
) -> CreateModelAnswer:
    location = output_config["S3Location"]
    check_location(location["Bucket"], location.get("Prefix") or "", "output location")
    get_project(project_name)
    _training_datasets(project_name)
    version = _next_version(project_name)
    item = ModelItem(
        project_name,
        version,
        model_arn=model_arn(project_name, version),
        status=str(ModelStatus.TRAINING),
        status_message=MESSAGES[ModelStatus.TRAINING],
        description=description,
        output_bucket=location["Bucket"],
        output_prefix=location.get("Prefix") or "",
        kms_key_id=kms_key_id,
        artifact_prefix=model_artifact_prefix(project_name, version),
        tags={tag["Key"]: tag["Value"] for tag in tags},
    )
    name = execution_name("train", version, project_name)
    item.execution_arn = execution_arn(StateMachine.TRAINING, name)
    item.save(condition=ModelItem.model_version.does_not_exist())
    metadata = _metadata(item)  # as created; the workflow may move on before we answer
    try:
        start_execution(StateMachine.TRAINING, name, {"ProjectName": project_name, "ModelVersion": version})
    except Exception as error:
        # No workflow will ever finish this version: never leave it TRAINING.
        lifecycle.change(item, ModelEvent.TRAINING_FAILED, f"Training could not be started: {error}")
        raise
    return {"ModelMetadata": metadata}


def describe_model(project_name: str, model_version: str) -> DescribeModelAnswer:
    return {"ModelDescription": describe(get_model(project_name, model_version))}


def list_models(
    project_name: str, next_token: str | None = None, max_results: int | None = None
) -> ListModelsAnswer:
    get_project(project_name)

    query = partition_reader(ModelItem, project_name, consistent_read=True)
    page, more = read_page(
        f"ListModels/{project_name}", next_token, max_results, query, lambda m: int(m.model_version)
    )
    return {"Models": [_metadata(item) for item in page], **more}


def delete_model(project_name: str, model_version: str) -> DeleteModelAnswer:
    item = get_model(project_name, model_version)
    lifecycle.change(item, ModelEvent.DELETE)
    if item.artifact_prefix:
        s3.delete_prefix(settings().artifacts_bucket, item.artifact_prefix)
    item.delete()
    return {"ModelArn": item.model_arn}


def start_model(
    project_name: str, model_version: str, min_units: int, max_units: int | None = None
) -> StartModelAnswer:
    if max_units is not None and max_units < min_units:
        raise ValidationException(
            f"MaxInferenceUnits ({max_units}) must be at least MinInferenceUnits ({min_units})."
        )
    item = get_model(project_name, model_version)
    if lifecycle.next_status(item, ModelEvent.START) == item.status:  # already running
        return {"Status": cast("ModelHostingStatusType", str(item.status))}
    limit = settings().max_inference_units
    if max(min_units, max_units or 0) > limit:
        raise ServiceQuotaExceededException(
            f"A model can use at most {limit} inference units.",
            INFERENCE_UNITS_QUOTA_CODE,
            item.model_arn,
            ResourceType.MODEL,
        )
    _start_hosting_workflow(
        item, "start", ModelEvent.START, min_inference_units=min_units, max_inference_units=max_units
    )
    return {"Status": cast("ModelHostingStatusType", str(ModelStatus.STARTING_HOSTING))}


def stop_model(project_name: str, model_version: str) -> StopModelAnswer:
    item = get_model(project_name, model_version)
    _start_hosting_workflow(item, "stop", ModelEvent.STOP)
    return {"Status": cast("ModelHostingStatusType", str(ModelStatus.STOPPING_HOSTING))}


def _start_hosting_workflow(item: ModelItem, action: str, event: ModelEvent, **fields: Any) -> None:
    version = int(item.model_version)
    name = execution_name(action, version, item.project_name)
    lifecycle.change(item, event, execution_arn=execution_arn(StateMachine.HOSTING, name), **fields)
    try:
        start_execution(
            StateMachine.HOSTING,
            name,
            {"ProjectName": item.project_name, "ModelVersion": version, "Action": action},
        )
    except Exception as error:
        failed = ModelEvent.HOSTING_FAILED if action == "start" else ModelEvent.STOP_NOT_STARTED
        lifecycle.change(item, failed, f"The hosting workflow could not be started: {error}")
        raise
