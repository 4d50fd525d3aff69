"""The seven error shapes of the Lookout for Vision service model, as exceptions.

Each exception knows its HTTP status and its modelled members, so that one function
(`openlookout.api.protocol.error_response`) can put any of them on the wire exactly as
botocore expects: `x-amzn-ErrorType`, a JSON body with `__type`, `message`/`Message` and the
members by their model names, and `Retry-After` where the shape has one.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar


class ResourceType(StrEnum):
    PROJECT = "PROJECT"
    DATASET = "DATASET"
    MODEL = "MODEL"
    TRIAL = "TRIAL"
    MODEL_PACKAGE_JOB = "MODEL_PACKAGE_JOB"


SERVICE_CODE = "lookoutvision"


class ServiceError(Exception):
    """Base of every error the API answers with; never raised itself."""

    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "InternalServerException"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body_members(self) -> dict[str, Any]:
        return {}

    def headers(self) -> dict[str, str]:
        return {}


class ValidationException(ServiceError):
    status_code = 400
    code = "ValidationException"


class AccessDeniedException(ServiceError):
    status_code = 403
    code = "AccessDeniedException"


class _ResourceError(ServiceError):
    def __init__(self, message: str, resource_id: str, resource_type: ResourceType) -> None:
        super().__init__(message)
        self.resource_id = resource_id
        self.resource_type = resource_type

    def body_members(self) -> dict[str, Any]:
        return {"ResourceId": self.resource_id, "ResourceType": str(self.resource_type)}


class ResourceNotFoundException(_ResourceError):
    status_code = 404
    code = "ResourceNotFoundException"


class ConflictException(_ResourceError):
    status_code = 409
    code = "ConflictException"


class ServiceQuotaExceededException(ServiceError):
    status_code = 402
    code = "ServiceQuotaExceededException"

    def __init__(
        self,
        message: str,
        quota_code: str,
        resource_id: str | None = None,
        resource_type: ResourceType | None = None,
    ) -> None:
        super().__init__(message)
        self.quota_code = quota_code
        self.resource_id = resource_id
        self.resource_type = resource_type

    def body_members(self) -> dict[str, Any]:
        members: dict[str, Any] = {"QuotaCode": self.quota_code, "ServiceCode": SERVICE_CODE}
        if self.resource_id is not None:
            members["ResourceId"] = self.resource_id
        if self.resource_type is not None:
            members["ResourceType"] = str(self.resource_type)
        return members


class ThrottlingException(ServiceError):
    status_code = 429
    code = "ThrottlingException"

    def __init__(self, message: str, retry_after_seconds: int = 1, quota_code: str | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds
        self.quota_code = quota_code

    def body_members(self) -> dict[str, Any]:
        if self.quota_code is None:
            return {}
        return {"QuotaCode": self.quota_code, "ServiceCode": SERVICE_CODE}

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


class InternalServerException(ServiceError):
    status_code = 500
    code = "InternalServerException"

    def __init__(self, message: str = "An internal error occurred.", retry_after_seconds: int | None = None):
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds

    def headers(self) -> dict[str, str]:
        return {} if self.retry_after_seconds is None else {"Retry-After": str(self.retry_after_seconds)}


ALL_ERRORS: tuple[type[ServiceError], ...] = (
    AccessDeniedException,
    ConflictException,
    InternalServerException,
    ResourceNotFoundException,
    ServiceQuotaExceededException,
    ThrottlingException,
    ValidationException,
)
