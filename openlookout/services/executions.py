"""Starting Step Functions executions, the one way every service does it.

A plain boto3 `stepfunctions` client: in AWS it reaches Step Functions, under `openlookout
serve` the endpoint in AWS_ENDPOINT_URL_STEPFUNCTIONS (the local interpreter).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from functools import cache
from typing import Any

import boto3

from openlookout.settings import settings
from openlookout.storage.tables import utcnow

MAX_NAME = 80  # Step Functions' limit for execution names


class StateMachine(StrEnum):
    """The service's state machines, each by the setting that holds its ARN (template.yaml gives
    each function the ARNs of those it starts)."""

    DATASET = "dataset_state_machine_arn"
    TRAINING = "training_state_machine_arn"
    HOSTING = "hosting_state_machine_arn"
    PACKAGING = "packaging_state_machine_arn"


@cache
def _stepfunctions() -> Any:
    return boto3.client("stepfunctions")


def state_machine_arn(machine: StateMachine) -> str:
    return settings().required(machine)


def execution_arn(machine: StateMachine, name: str) -> str:
    """The ARN Step Functions will give an execution, known before it starts, so an item can carry
    it before its workflow (which may finish first) touches the item."""
    return state_machine_arn(machine).replace(":stateMachine:", ":execution:", 1) + f":{name}"


def execution_name(action: str, *parts: str | int) -> str:
    """A new execution's name: the action, a millisecond stamp (unique per resource), then what it
    acts on; cut to Step Functions' limit at the end, so the unique part stays."""
    stamp = int(utcnow().timestamp() * 1000)
    return "-".join(str(part) for part in (action, stamp, *parts))[:MAX_NAME]


def start_execution(machine: StateMachine, name: str, payload: Mapping[str, Any]) -> str:
    response = _stepfunctions().start_execution(
        stateMachineArn=state_machine_arn(machine), name=name, input=json.dumps(payload)
    )
    return str(response["executionArn"])
