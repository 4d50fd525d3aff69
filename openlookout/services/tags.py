"""Tags on models (the only taggable resource of Lookout for Vision)."""

from __future__ import annotations

from typing import Any

from pynamodb.exceptions import PutError

from openlookout.core.arns import model_arn, parse_model_arn
from openlookout.core.errors import (
    ConflictException,
    ResourceNotFoundException,
    ResourceType,
    ServiceQuotaExceededException,
    ValidationException,
)
from openlookout.services.answers import Empty, ListTagsForResourceAnswer
from openlookout.storage.conditions import lost_condition
from openlookout.storage.tables import ModelItem

MAX_TAGS_PER_RESOURCE = 50  # the AWS-wide default for tags on one resource
TAG_QUOTA_CODE = "L-TAGS-PER-RESOURCE"


def _model_for(resource_arn: str) -> ModelItem:
    project, version = parse_model_arn(resource_arn)
    missing = ResourceNotFoundException(
        f"The model {resource_arn} does not exist.", resource_arn, ResourceType.MODEL
    )
    if resource_arn != model_arn(project, version):  # another region, account or partition
        raise missing
    try:
        return ModelItem.get(project, version, consistent_read=True)
    except ModelItem.DoesNotExist:
        raise missing from None


def _tags_of(item: ModelItem) -> dict[str, str]:
    # A raw MapAttribute reads back as a MapAttribute after a load, and as a dict when just set.
    tags = item.tags
    return dict(tags.as_dict() if hasattr(tags, "as_dict") else tags or {})


def _save_tags(resource_arn: str, change: Any) -> None:
    for _attempt in range(3):
        item = _model_for(resource_arn)
        tags = _tags_of(item)
        change(tags)
        item.tags = tags
        try:
            item.save()  # VersionAttribute makes this conditional
            return
        except PutError as error:
            if not lost_condition(error):
                raise
    raise ConflictException(
        f"The tags of {resource_arn} were changed concurrently; retry.", resource_arn, ResourceType.MODEL
    )


def tag_resource(resource_arn: str, tags: list[dict[str, str]]) -> Empty:
    for tag in tags:
        if tag["Key"].lower().startswith("aws:"):
            raise ValidationException(f"The tag key {tag['Key']} uses the reserved prefix aws:.")

    def add(current: dict[str, str]) -> None:
        current.update({tag["Key"]: tag["Value"] for tag in tags})
        if len(current) > MAX_TAGS_PER_RESOURCE:
            raise ServiceQuotaExceededException(
                f"A model can have at most {MAX_TAGS_PER_RESOURCE} tags; this request would give "
                f"{resource_arn} {len(current)}.",
                TAG_QUOTA_CODE,
                resource_arn,
                ResourceType.MODEL,
            )

    _save_tags(resource_arn, add)
    return {}


def untag_resource(resource_arn: str, tag_keys: list[str]) -> Empty:
    def remove(current: dict[str, str]) -> None:
        for key in tag_keys:
            current.pop(key, None)

    _save_tags(resource_arn, remove)
    return {}


def list_tags_for_resource(resource_arn: str) -> ListTagsForResourceAnswer:
    item = _model_for(resource_arn)
    tags = _tags_of(item)
    return {"Tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())]}
