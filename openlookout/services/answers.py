"""What each operation's service answers, typed by the service model's own shapes.

The member types are mypy-boto3-lookoutvision's TypeDefs, generated from the same botocore model
that is this project's contract. boto3's response TypeDefs also hold `ResponseMetadata`, which a
client adds after the wire; an answer here is the response without it, exactly the output shape's
members (tests/unit/test_protocol.py checks every answer against the service model). Types only:
the stubs are a development dependency, and nothing here runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

if TYPE_CHECKING:
    from mypy_boto3_lookoutvision.literals import DatasetStatusType, ModelHostingStatusType
    from mypy_boto3_lookoutvision.type_defs import (
        DatasetDescriptionTypeDef,
        DatasetMetadataTypeDef,
        DetectAnomalyResultTypeDef,
        ModelDescriptionTypeDef,
        ModelMetadataTypeDef,
        ModelPackagingDescriptionTypeDef,
        ModelPackagingJobMetadataTypeDef,
        ProjectDescriptionTypeDef,
        ProjectMetadataTypeDef,
        TagTypeDef,
    )


def structure(members: Mapping[str, Any]) -> Any:
    """An output structure without its unset (None) members, as the wire carries it; the caller's
    TypeDef types it (a TypedDict has no key for "absent or None")."""
    return {name: value for name, value in members.items() if value is not None}


class Empty(TypedDict):
    """DeleteDataset, TagResource, UntagResource."""


class CreateProjectAnswer(TypedDict):
    ProjectMetadata: ProjectMetadataTypeDef


class DescribeProjectAnswer(TypedDict):
    ProjectDescription: ProjectDescriptionTypeDef


class ListProjectsAnswer(TypedDict):
    Projects: list[ProjectMetadataTypeDef]
    NextToken: NotRequired[str]


class DeleteProjectAnswer(TypedDict):
    ProjectArn: str


class CreateDatasetAnswer(TypedDict):
    DatasetMetadata: DatasetMetadataTypeDef


class DescribeDatasetAnswer(TypedDict):
    DatasetDescription: DatasetDescriptionTypeDef


class ListDatasetEntriesAnswer(TypedDict):
    DatasetEntries: list[str]
    NextToken: NotRequired[str]


class UpdateDatasetEntriesAnswer(TypedDict):
    Status: DatasetStatusType


class CreateModelAnswer(TypedDict):
    ModelMetadata: ModelMetadataTypeDef


class DescribeModelAnswer(TypedDict):
    ModelDescription: ModelDescriptionTypeDef


class ListModelsAnswer(TypedDict):
    Models: list[ModelMetadataTypeDef]
    NextToken: NotRequired[str]


class DeleteModelAnswer(TypedDict):
    ModelArn: str


class StartModelAnswer(TypedDict):
    Status: ModelHostingStatusType


class StopModelAnswer(TypedDict):
    Status: ModelHostingStatusType


class DetectAnomaliesAnswer(TypedDict):
    DetectAnomalyResult: DetectAnomalyResultTypeDef


class StartModelPackagingJobAnswer(TypedDict):
    JobName: str


class DescribeModelPackagingJobAnswer(TypedDict):
    ModelPackagingDescription: ModelPackagingDescriptionTypeDef


class ListModelPackagingJobsAnswer(TypedDict):
    ModelPackagingJobs: list[ModelPackagingJobMetadataTypeDef]
    NextToken: NotRequired[str]


class ListTagsForResourceAnswer(TypedDict):
    Tags: list[TagTypeDef]


# Each operation's answer (the test compares each with the operation's output shape).
ANSWERS: dict[str, type] = {
    "CreateProject": CreateProjectAnswer,
    "DescribeProject": DescribeProjectAnswer,
    "ListProjects": ListProjectsAnswer,
    "DeleteProject": DeleteProjectAnswer,
    "CreateDataset": CreateDatasetAnswer,
    "DescribeDataset": DescribeDatasetAnswer,
    "ListDatasetEntries": ListDatasetEntriesAnswer,
    "UpdateDatasetEntries": UpdateDatasetEntriesAnswer,
    "DeleteDataset": Empty,
    "CreateModel": CreateModelAnswer,
    "DescribeModel": DescribeModelAnswer,
    "ListModels": ListModelsAnswer,
    "DeleteModel": DeleteModelAnswer,
    "StartModel": StartModelAnswer,
    "StopModel": StopModelAnswer,
    "DetectAnomalies": DetectAnomaliesAnswer,
    "StartModelPackagingJob": StartModelPackagingJobAnswer,
    "DescribeModelPackagingJob": DescribeModelPackagingJobAnswer,
    "ListModelPackagingJobs": ListModelPackagingJobsAnswer,
    "TagResource": Empty,
    "UntagResource": Empty,
    "ListTagsForResource": ListTagsForResourceAnswer,
}
