"""Starting Step Functions executions, the one way every service does it.

A plain boto3 `stepfunctions` client: in AWS it reaches Step Functions, under `openlookout
serve` the endpoint in AWS_ENDPOINT_URL_STEPFUNCTIONS (the local interpreter).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import cache
from typing import Any

import boto3

MAX_NAME = 80  # Step Functions' limit for execution names


@cache
def _stepfunctions() -> Any:
    return boto3.client("stepfunctions")


def state_machine_arn(state_machine_env: str) -> str:
    arn = os.environ.get(state_machine_env)
    if not arn:
        raise RuntimeError(f"{state_machine_env} is not set: the template gives it to this function")
    return arn


def execution_arn(state_machine_env: str, name: str) -> str:
    """The ARN Step Functions will give an execution, known before it starts, so an item can carry
    it before its workflow (which may finish first) touches the item."""
    arn = os.environ.get(state_machine_env) or f"arn:aws:states:::stateMachine:{state_machine_env}"
    return arn.replace(":stateMachine:", ":execution:", 1) + f":{name}"


def start_execution(state_machine_env: str, name: str, payload: Mapping[str, Any]) -> str:
    response = _stepfunctions().start_execution(
        stateMachineArn=state_machine_arn(state_machine_env), name=name[:MAX_NAME], input=json.dumps(payload)
    )
    return str(response["executionArn"])
