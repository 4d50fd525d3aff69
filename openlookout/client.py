"""What a user's own boto3 script imports from OpenLookout (the `openlookout` command uses them too):
waiters for the asynchronous operations, and signing for a deployed stack's API Gateway.

    from openlookout.client import wait_for_dataset, wait_for_model, use_api_gateway_signing

API Gateway's IAM authorization checks SigV4 signatures made for the service `execute-api`,
while botocore signs `lookoutvision` requests for `lookoutvision`. One event handler on the
client fixes the signing name, and nothing else about the request changes:

    lv = boto3.client("lookoutvision", endpoint_url=ApiEndpoint)
    lv.meta.events.register("before-sign.lookoutvision", sign_for_api_gateway)

`sign_for_api_gateway` is a plain function (copy it if you do not want this package on the
client): it sets the signing name in the request's signing context, which botocore's signer
reads before it signs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

API_GATEWAY_SIGNING_NAME = "execute-api"


def sign_for_api_gateway(request: Any, **_: Any) -> None:
    request.context.setdefault("signing", {})["signing_name"] = API_GATEWAY_SIGNING_NAME


def use_api_gateway_signing(client: Any) -> Any:
    """Registers `sign_for_api_gateway` on a lookoutvision client and returns the client."""
    client.meta.events.register("before-sign.lookoutvision", sign_for_api_gateway)
    return client


# ------------------------------------------------------------------ waiters
# L4V's botocore model has no waiters; these poll the Describe operations the way a boto3 waiter
# would, and stop on the first status that is not a transition.

DATASET_TRANSITIONS = frozenset({"CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "DELETE_IN_PROGRESS"})
MODEL_TRANSITIONS = frozenset({"TRAINING", "STARTING_HOSTING", "STOPPING_HOSTING", "DELETING"})
FAILED_STATUSES = frozenset(
    {"CREATE_FAILED", "UPDATE_FAILED_ROLLBACK_IN_PROGRESS", "UPDATE_FAILED_ROLLBACK_COMPLETE"}
    | {"DELETE_FAILED", "TRAINING_FAILED", "HOSTING_FAILED"}
)


class WaitError(RuntimeError):
    """The resource ended in a failed status, or the wait ran out of time."""

    def __init__(self, message: str, description: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.description = description or {}


def _wait(
    describe: Callable[[], dict[str, Any]],
    transitions: frozenset[str],
    what: str,
    delay: float,
    timeout: float,
    on_change: Callable[[dict[str, Any]], None] | None,
) -> dict[str, Any]:
    deadline, last = time.monotonic() + timeout, None
    while True:
        current = describe()
        seen = (current.get("Status"), current.get("StatusMessage"))
        if on_change is not None and seen != last:
            on_change(current)
        last = seen
        if current["Status"] not in transitions:
            if current["Status"] in FAILED_STATUSES:
                raise WaitError(f"{what} is {current['Status']}: {current.get('StatusMessage')}", current)
            return current
        if time.monotonic() > deadline:
            raise WaitError(f"{what} is still {current['Status']} after {timeout:.0f} s", current)
        time.sleep(delay)


def wait_for_dataset(
    client: Any,
    ProjectName: str,
    DatasetType: str,
    *,
    delay: float = 1.0,
    timeout: float = 1800.0,
    on_change: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Polls DescribeDataset until the dataset leaves *_IN_PROGRESS; returns its DatasetDescription.

    Raises WaitError when the import failed (the description's StatusMessage says why)."""
    return _wait(
        lambda: client.describe_dataset(ProjectName=ProjectName, DatasetType=DatasetType)[
            "DatasetDescription"
        ],
        DATASET_TRANSITIONS,
        f"the {DatasetType} dataset of {ProjectName}",
        delay,
        timeout,
        on_change,
    )


def wait_for_model(
    client: Any,
    ProjectName: str,
    ModelVersion: str,
    *,
    delay: float = 1.0,
    timeout: float = 86400.0,
    on_change: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Polls DescribeModel until TRAINING, STARTING_HOSTING or STOPPING_HOSTING ends; returns its
    ModelDescription. Raises WaitError on TRAINING_FAILED or HOSTING_FAILED.

    `on_change` gets each new (Status, StatusMessage), e.g. to show training progress."""
    return _wait(
        lambda: client.describe_model(ProjectName=ProjectName, ModelVersion=ModelVersion)["ModelDescription"],
        MODEL_TRANSITIONS,
        f"model {ModelVersion} of {ProjectName}",
        delay,
        timeout,
        on_change,
    )
