"""Starting Step Functions executions, the one way every service does it.

A plain boto3 `stepfunctions` client: in AWS it reaches Step Functions, under `openlookout
serve` the endpoint in AWS_ENDPOINT_URL_STEPFUNCTIONS (the local interpreter).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from typing import Any

import boto3

from openlookout.settings import settings

MAX_NAME = 80  # Step Functions' limit for execution names


@cache
def _stepfunctions() -> Any:
    return boto3.client("stepfunctions")


def state_machine_arn(state_machine_env: str) -> str:
    return settings().required(state_machine_env)


def execution_arn(state_machine_env: str, name: str) -> str:
    """The ARN Step Functions will give an execution, known before it starts, so an item can carry
    it before its workflow (which may finish first) touches the item."""
    return state_machine_arn(state_machine_env).replace(":stateMachine:", ":execution:", 1) + f":{name}"


def start_execution(state_machine_env: str, name: str, payload: Mapping[str, Any]) -> str:
    response = _stepfunctions().start_execution(
        stateMachineArn=state_machine_arn(state_machine_env), name=name[:MAX_NAME], input=json.dumps(payload)
    )
    return str(response["executionArn"])
