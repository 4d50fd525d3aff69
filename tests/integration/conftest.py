"""The contract suite against a deployed stack: set OPENLOOKOUT_ENDPOINT to its ApiEndpoint output.

Against AWS the lookoutvision client signs for API Gateway (`execute-api`), as the README tells
users to; s3 goes to AWS's own S3 with the default credential chain.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from openlookout.client import use_api_gateway_signing
from tests.contract.conftest import (  # noqa: F401 - fixtures reused as they are
    client_for,
    local_service,
    s3,
    service,
    stepfunctions,
    unique_name,
)

ENDPOINT = os.environ.get("OPENLOOKOUT_ENDPOINT")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ENDPOINT:
        return
    skip = pytest.mark.skip(
        reason="no deployed stack named: set OPENLOOKOUT_ENDPOINT to a stack's ApiEndpoint "
        "(sam deploy, or samlocal deploy on LocalStack) to run the contract suite against it"
    )
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def lookoutvision(service: Any) -> Any:  # noqa: F811 - the deployed API needs execute-api signatures
    client = client_for(service, "lookoutvision")
    if ".execute-api." in (ENDPOINT or ""):
        use_api_gateway_signing(client)
    return client
