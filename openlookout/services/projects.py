"""Projects: create, describe, list, delete."""

from __future__ import annotations

from typing import TYPE_CHECKING

from openlookout.core.arns import project_arn
from openlookout.core.errors import ConflictException, ResourceNotFoundException, ResourceType
from openlookout.core.pagination import read_page
from openlookout.services.answers import (
    CreateProjectAnswer,
    DeleteProjectAnswer,
    DescribeProjectAnswer,
    ListProjectsAnswer,
    structure,
)
from openlookout.settings import settings
from openlookout.storage.conditions import refused_if_lost
from openlookout.storage.tables import (
    DatasetItem,
    ModelItem,
    ModelPackagingJobItem,
    ProjectItem,
    partition_reader,
)

if TYPE_CHECKING:
    from mypy_boto3_lookoutvision.type_defs import DatasetMetadataTypeDef, ProjectMetadataTypeDef


def _metadata(item: ProjectItem) -> ProjectMetadataTypeDef:
    return {  # every member is always set
        "ProjectArn": item.project_arn,
        "ProjectName": item.project_name,
        "CreationTimestamp": item.created_at,
    }


def dataset_metadata(item: DatasetItem) -> DatasetMetadataTypeDef:
    """A dataset as DescribeProject lists it and CreateDataset answers it."""
    return structure(
        {
            "DatasetType": item.dataset_type,
            "CreationTimestamp": item.created_at,
            "Status": item.status,
            "StatusMessage": item.status_message,
        }
    )


def get_project(project_name: str) -> ProjectItem:
    try:
        return ProjectItem.get(settings().account_id, project_name, consistent_read=True)
    except ProjectItem.DoesNotExist:
        raise project_not_found(project_name) from None


def project_not_found(project_name: str) -> ResourceNotFoundException:
    return ResourceNotFoundException(
        f"The project {project_name} does not exist.", project_name, ResourceType.PROJECT
    )


def create_project(project_name: str) -> CreateProjectAnswer:
    item = ProjectItem(settings().account_id, project_name, project_arn=project_arn(project_name))
    duplicate = ConflictException(
        f"A project named {project_name} already exists.", project_name, ResourceType.PROJECT
    )
    with refused_if_lost(duplicate):
        item.save(condition=ProjectItem.project_name.does_not_exist())
    return {"ProjectMetadata": _metadata(item)}


def describe_project(project_name: str) -> DescribeProjectAnswer:
    item = get_project(project_name)
    datasets = [
        dataset_metadata(dataset) for dataset in DatasetItem.query(project_name, consistent_read=True)
    ]
    return {"ProjectDescription": {**_metadata(item), "Datasets": datasets}}


def list_projects(next_token: str | None = None, max_results: int | None = None) -> ListProjectsAnswer:
    query = partition_reader(ProjectItem, settings().account_id)
    page, more = read_page("ListProjects", next_token, max_results, query, lambda item: item.project_name)
    return {"Projects": [_metadata(item) for item in page], **more}


def delete_project(project_name: str) -> DeleteProjectAnswer:
    item = get_project(project_name)
    datasets = [d.dataset_type for d in DatasetItem.query(project_name, consistent_read=True)]
    models = ModelItem.count(project_name, consistent_read=True)
    if datasets or models:
        parts = []
        if datasets:
            parts.append(f"datasets ({', '.join(sorted(datasets))})")
        if models:
            parts.append(f"{models} model(s)")
        raise ConflictException(
            f"The project {project_name} still has {' and '.join(parts)}. Delete them before the project.",
            project_name,
            ResourceType.PROJECT,
        )
    with refused_if_lost(project_not_found(project_name)):
        item.delete(condition=ProjectItem.project_name.exists())
    # Packaging job records belong to the project: a new project of the same name starts without them.
    for job in ModelPackagingJobItem.query(project_name):
        job.delete()
    return {"ProjectArn": item.project_arn}
