"""Runs the template's state machines in-process for functional tests.

The ASL files are executed by the local runtime's interpreter (`openlookout.local.asl`), with
each Lambda task calling the template's function module in-process, exactly as `openlookout
serve` does; only the start of an execution is intercepted, so a test can run it at once or
hold it to observe the in-between states.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.template_support import ROOT, function_module, lambda_context, resources

__all__ = ["StateMachines", "definition", "function_module", "lambda_context", "status_change"]

STATE_MACHINE_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:{}"  # as tests/conftest.py sets


def status_change(
    state_machine: str,
    execution_arn: str | None,
    payload: dict[str, Any],
    status: str,
    error: str | None = None,
) -> dict[str, Any]:
    """The EventBridge event Step Functions sends when an execution of `state_machine` ends."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "source": "aws.states",
        "detail-type": "Step Functions Execution Status Change",
        "account": "123456789012",
        "time": "2026-12-06T00:00:00Z",
        "region": "us-east-1",
        "resources": [execution_arn or "arn:x"],
        "detail": {
            "executionArn": execution_arn or "arn:x",
            "stateMachineArn": STATE_MACHINE_ARN.format(state_machine),
            "status": status,
            "error": error,
            "input": json.dumps(payload),
        },
    }


def definition(state_machine: str) -> dict[str, Any]:
    machine = resources("AWS::Serverless::StateMachine")[state_machine]["Properties"]
    text = (ROOT / machine["DefinitionUri"]).read_text()
    for name, value in machine["DefinitionSubstitutions"].items():
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            replacement = f"arn:aws:lambda:us-east-1:123456789012:function:{value['Fn::GetAtt'][0]}"
        else:
            replacement = f"unused-{name}"
        text = text.replace("${" + name + "}", replacement)
    assert "${" not in text
    return json.loads(text)  # type: ignore[no-any-return]


class StateMachines:
    """Stands in for Step Functions' StartExecution: runs each execution at once, or holds it."""

    def __init__(self) -> None:
        from openlookout.local import asl

        self.asl = asl
        self.hold = False
        self.held: list[tuple[str, dict[str, Any]]] = []
        self.outcomes: list[str] = []

    def _invoke(self, resource: str, payload: Any) -> Any:
        logical_id = resource.rsplit(":", 1)[-1]
        try:
            result = function_module(logical_id).lambda_handler(payload, lambda_context(logical_id))
        except Exception as exc:
            error = {"errorMessage": str(exc), "errorType": type(exc).__name__}
            raise self.asl.task_error(type(exc).__name__, error) from exc
        return json.loads(json.dumps(result))  # what crosses a Lambda boundary is JSON

    def start(self, state_machine: str, payload: dict[str, Any]) -> str:
        payload = json.loads(json.dumps(payload))
        if self.hold:
            self.held.append((state_machine, payload))
        else:
            self.run(state_machine, payload)
        return f"arn:aws:states:us-east-1:123456789012:execution:{state_machine}:{uuid.uuid4()}"

    def run(self, state_machine: str, payload: dict[str, Any]) -> None:
        context = {"Execution": {"Name": str(uuid.uuid4()), "Id": "local"}}
        try:
            self.asl.Interpreter(self._invoke, sleep=lambda seconds: None).run(
                definition(state_machine), payload, context
            )
            self.outcomes.append("SUCCEEDED")
        except self.asl.StatesError as error:
            self.outcomes.append(f"FAILED {error.error}")

    def release(self) -> None:
        held, self.held, self.hold = self.held, [], False
        for state_machine, payload in held:
            self.run(state_machine, payload)
