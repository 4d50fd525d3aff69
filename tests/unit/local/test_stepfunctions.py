"""openlookout.local.stepfunctions: the awsJson API, records, restart recovery, status events."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from openlookout.local.lambdas import FunctionError, Functions
from openlookout.local.stepfunctions import INTERRUPTED_ERROR, StepFunctions, event_pattern_matches
from openlookout.local.template import Function, StateMachine

ARN = "arn:aws:states:us-east-1:000000000000:stateMachine:Flow"
FN = "arn:aws:lambda:us-east-1:000000000000:function:Work"


class FakeFunctions(Functions):
    def __init__(self, specs: list[Function]) -> None:
        super().__init__(specs, "us-east-1", "000000000000")
        self.events: list[Any] = []

    def invoke(self, name_or_arn: str, event: Any) -> Any:
        name = name_or_arn.rsplit(":", 1)[-1]
        if name == "Watcher":
            self.events.append(event)
            return None
        if isinstance(event, dict) and event.get("sleep"):
            time.sleep(event["sleep"])
        if isinstance(event, dict) and event.get("fail"):
            raise FunctionError("KeyError", "'x'", [])
        return {"ok": event}


def machine(definition: dict[str, Any] | None = None) -> StateMachine:
    definition = definition or {
        "StartAt": "T",
        "States": {"T": {"Type": "Task", "Resource": FN, "End": True}},
    }
    return StateMachine("Flow", "Flow", ARN, definition)


def watcher(pattern: dict[str, Any]) -> Function:
    return Function("Watcher", Path("."), "app.h", 3, {}, event_rules=[pattern])


@pytest.fixture
def functions() -> FakeFunctions:
    pattern = {
        "source": ["aws.states"],
        "detail": {"stateMachineArn": [ARN], "status": ["FAILED", "ABORTED"]},
    }
    return FakeFunctions([watcher(pattern)])


@pytest.fixture
def service(tmp_path: Path, functions: FakeFunctions) -> Iterator[StepFunctions]:
    service = StepFunctions([machine()], functions, tmp_path, "us-east-1", "000000000000", max_workers=2)
    yield service
    service.shutdown()


def call(service: StepFunctions, operation: str, **request: Any) -> tuple[int, dict[str, Any]]:
    body = json.dumps(request).encode()
    captured: dict[str, Any] = {}
    environ = {
        "HTTP_X_AMZ_TARGET": f"AWSStepFunctions.{operation}",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    data = service(environ, lambda status, headers: captured.update(status=status))
    return int(captured["status"].split()[0]), json.loads(b"".join(data))


def test_start_describe_list_and_history(service: StepFunctions) -> None:
    status, started = call(service, "StartExecution", stateMachineArn=ARN, name="one", input='{"v": 1}')
    assert status == 200 and started["executionArn"].endswith(":execution:Flow:one")
    done = service.wait(started["executionArn"])
    assert done.status == "SUCCEEDED"
    _, described = call(service, "DescribeExecution", executionArn=started["executionArn"])
    assert json.loads(described["output"]) == {"ok": {"v": 1}}
    _, listed = call(service, "ListExecutions", stateMachineArn=ARN)
    assert [e["name"] for e in listed["executions"]] == ["one"]
    _, history = call(service, "GetExecutionHistory", executionArn=started["executionArn"])
    assert [e["type"] for e in history["events"]] == [
        "ExecutionStarted",
        "TaskStateEntered",
        "TaskStateExited",
        "ExecutionSucceeded",
    ]


def test_errors_are_aws_shaped(service: StepFunctions) -> None:
    status, body = call(
        service, "DescribeExecution", executionArn=ARN.replace("stateMachine", "execution") + ":x"
    )
    assert (status, body["__type"]) == (400, "ExecutionDoesNotExist")
    status, body = call(service, "StartExecution", stateMachineArn=ARN + "Nope")
    assert body["__type"] == "StateMachineDoesNotExist"
    status, body = call(service, "StartExecution", stateMachineArn=ARN, input="{not json")
    assert body["__type"] == "InvalidExecutionInput"
    call(service, "StartExecution", stateMachineArn=ARN, name="dup", input="{}")
    service.wait(ARN.replace("stateMachine", "execution") + ":dup")
    status, body = call(service, "StartExecution", stateMachineArn=ARN, name="dup", input="{}")
    assert body["__type"] == "ExecutionAlreadyExists"


def test_failure_is_announced_to_matching_rule(service: StepFunctions, functions: FakeFunctions) -> None:
    _, started = call(service, "StartExecution", stateMachineArn=ARN, input='{"fail": true}')
    done = service.wait(started["executionArn"])
    assert (done.status, done.error) == ("FAILED", "KeyError")
    assert json.loads(done.cause or "")["errorType"] == "KeyError"
    (event,) = functions.events
    assert event["detail-type"] == "Step Functions Execution Status Change"
    assert (
        event["detail"]["status"] == "FAILED" and event["detail"]["executionArn"] == started["executionArn"]
    )


def test_stop_execution_aborts(service: StepFunctions) -> None:
    _, started = call(service, "StartExecution", stateMachineArn=ARN, input='{"sleep": 0.3}')
    status, _ = call(
        service, "StopExecution", executionArn=started["executionArn"], error="Stop", cause="test"
    )
    assert status == 200
    assert service.wait(started["executionArn"]).status == "ABORTED"
    time.sleep(0.4)  # the task finishing later must not overwrite ABORTED
    assert service.wait(started["executionArn"]).status == "ABORTED"


def test_restart_marks_running_executions_failed_and_tells_the_rules(
    tmp_path: Path, functions: FakeFunctions
) -> None:
    first = StepFunctions([machine()], functions, tmp_path, "us-east-1", "000000000000")
    started = first.start_execution(ARN, "cut", '{"sleep": 2}')
    first.shutdown()  # as a SIGTERM would: the record stays RUNNING on disk
    assert json.loads(next((tmp_path / "executions").glob("*/cut.json")).read_text())["status"] == "RUNNING"

    second = StepFunctions([machine()], functions, tmp_path, "us-east-1", "000000000000")
    (interrupted,) = second.recover()
    assert interrupted.executionArn == started.executionArn
    described = second.handle("DescribeExecution", {"executionArn": started.executionArn})
    assert (described["status"], described["error"]) == ("FAILED", INTERRUPTED_ERROR)
    # The Watcher's rule (FAILED executions of this machine) heard it once, as EventBridge would tell it.
    assert [e["detail"]["executionArn"] for e in functions.events] == [started.executionArn]
    assert functions.events[-1]["detail"]["error"] == INTERRUPTED_ERROR
    assert second.recover() == []  # only once
    second.shutdown()


def test_event_patterns() -> None:
    event = {"source": "aws.states", "detail": {"status": "FAILED", "name": "run-1", "tags": ["a", "b"]}}
    assert event_pattern_matches({"source": ["aws.states"]}, event)
    assert event_pattern_matches({"detail": {"status": ["FAILED", "TIMED_OUT"]}}, event)
    assert not event_pattern_matches({"detail": {"status": ["SUCCEEDED"]}}, event)
    assert event_pattern_matches({"detail": {"name": [{"prefix": "run-"}]}}, event)
    assert event_pattern_matches({"detail": {"status": [{"anything-but": "SUCCEEDED"}]}}, event)
    assert event_pattern_matches({"detail": {"tags": ["b"]}}, event)
    assert event_pattern_matches({"detail": {"error": [{"exists": False}]}}, event)
    assert not event_pattern_matches({"detail": {"missing": ["x"]}}, event)
