"""The Lookout for Vision service model: the one source of routes, shapes and constraints.

The model ships in the pip package `botocore-a-la-carte-lookoutvision`, which drops it into
botocore's data folder; we read it with botocore's own loader, exactly as a client does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import botocore.session
from botocore.model import OperationModel, ServiceModel

SERVICE_NAME = "lookoutvision"
API_VERSION = "2020-11-20"


@cache
def service_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model(SERVICE_NAME, api_version=API_VERSION)


def operation_model(name: str) -> OperationModel:
    return service_model().operation_model(name)


@dataclass(frozen=True)
class Route:
    operation: str
    method: str
    path: str  # API Gateway style template: /2020-11-20/projects/{projectName}
    status_code: int

    @property
    def regex(self) -> re.Pattern[str]:
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.path))
        return re.compile(f"^{pattern}$")


@cache
def routes() -> tuple[Route, ...]:
    model = service_model()
    result = []
    for name in model.operation_names:
        http = model.operation_model(name).http
        result.append(Route(name, http["method"], http["requestUri"], int(http.get("responseCode", 200))))
    return tuple(result)


def route(operation: str) -> Route:
    for candidate in routes():
        if candidate.operation == operation:
            return candidate
    raise KeyError(operation)
