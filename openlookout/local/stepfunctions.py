"""Local Step Functions: the template's state machines, run by openlookout.local.asl, behind the
`states` (awsJson1_0) API that boto3's `stepfunctions` client speaks.

Executions run on a bounded pool of daemon threads, so StartExecution returns at once. Each is
a JSON record under <data-dir>/stepfunctions/executions/, written when it starts and ends. An
execution still RUNNING when the service starts again was cut short by a shutdown: it becomes
FAILED with error `OpenLookout.Interrupted`. As for every execution that ends, a
"Step Functions Execution Status Change" event then goes to the template functions whose
EventBridgeRule/CloudWatchEvent pattern matches it (e.g. status FAILED), exactly as in AWS. That is
how workflows notice and repair the resources an execution was driving.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from openlookout.local.asl import ExecutionStopped, Interpreter, StatesError
from openlookout.local.lambdas import FunctionError, FunctionNotFound, Functions
from openlookout.local.template import StateMachine

log = logging.getLogger("serve.states")

INTERRUPTED_ERROR = "OpenLookout.Interrupted"
MAX_EVENTS = 5000


class ServiceException(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass
class Execution:
    executionArn: str
    stateMachineArn: str
    name: str
    status: str
    startDate: float
    input: str
    stopDate: float | None = None
    output: str | None = None
    error: str | None = None
    cause: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        record = {k: v for k, v in asdict(self).items() if v is not None and k != "events"}
        record["inputDetails"] = {"included": True}
        if self.output is not None:
            record["outputDetails"] = {"included": True}
        return record

    def summary(self) -> dict[str, Any]:
        keys = ("executionArn", "stateMachineArn", "name", "status", "startDate", "stopDate")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


def _valid_name(name: str) -> bool:
    return (
        0 < len(name) <= 80
        and re.fullmatch(r"[^\s<>{}\[\]?*\"#%\\^|~`$&,;:/\x00-\x1f\x7f]+", name) is not None
    )


def event_pattern_matches(pattern: Any, event: Any) -> bool:
    """EventBridge matching, the common subset: exact values, prefix, anything-but, exists."""
    if isinstance(pattern, dict):
        if not isinstance(event, dict):
            return False
        for key, expected in pattern.items():
            exists = (
                [r["exists"] for r in expected if isinstance(r, dict) and "exists" in r]
                if isinstance(expected, list)
                else []
            )
            if exists:
                if (key in event) != bool(exists[0]):
                    return False
            elif key not in event or not event_pattern_matches(expected, event[key]):
                return False
        return True
    if isinstance(pattern, list):
        values = event if isinstance(event, list) else [event]
        return any(_value_matches(rule, value) for rule in pattern for value in values)
    return bool(pattern == event)


def _value_matches(rule: Any, value: Any) -> bool:
    if isinstance(rule, dict):
        if "prefix" in rule:
            return isinstance(value, str) and value.startswith(rule["prefix"])
        if "anything-but" in rule:
            excluded = rule["anything-but"]
            return value not in (excluded if isinstance(excluded, list) else [excluded])
        return False
    return bool(rule == value)


class StepFunctions:
    def __init__(
        self,
        machines: Iterable[StateMachine],
        functions: Functions,
        data_dir: Path,
        region: str,
        account_id: str,
        max_workers: int = 8,
    ) -> None:
        self.machines = {m.arn: m for m in machines}
        self.functions = functions
        self.directory = data_dir / "executions"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.region, self.account_id = region, account_id
        self.created = time.time()
        self._executions: dict[str, Execution] = {}
        self._stops: dict[str, threading.Event] = {}
        self._lock = threading.RLock()
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._workers = [
            threading.Thread(target=self._work, name=f"sfn-worker-{i}", daemon=True)
            for i in range(max_workers)
        ]
        self._closing = False
        for worker in self._workers:
            worker.start()

    # -------------------------------------------------------- records

    def _path(self, execution: Execution) -> Path:
        machine = execution.stateMachineArn.rsplit(":", 1)[-1]
        return self.directory / machine / f"{execution.name}.json"

    def _save(self, execution: Execution) -> None:
        path = self._path(execution)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
        temporary.write_text(json.dumps(asdict(execution)), encoding="utf-8")
        os.replace(temporary, path)  # atomic: a crash never leaves half a record

    def recover(self) -> list[Execution]:
        """Loads the records; those left RUNNING by a shutdown become FAILED (and are announced)."""
        interrupted = []
        for path in sorted(self.directory.glob("*/*.json")):
            try:
                execution = Execution(**json.loads(path.read_text(encoding="utf-8")))
            except (ValueError, TypeError) as error:
                log.warning("skipping unreadable execution record %s: %s", path, error)
                continue
            self._executions[execution.executionArn] = execution
            if execution.status == "RUNNING":
                execution.status = "FAILED"
                execution.error = INTERRUPTED_ERROR
                execution.cause = "The local service stopped while this execution was running."
                execution.stopDate = time.time()
                execution.events.append(self._event("ExecutionFailed", {"error": execution.error}))
                self._save(execution)
                interrupted.append(execution)
        for execution in interrupted:
            log.warning("execution %s was interrupted by a shutdown: marked FAILED", execution.executionArn)
            self._announce(execution)
        return interrupted

    # -------------------------------------------------------- running

    def start_execution(self, machine_arn: str, name: str | None, input_text: str | None) -> Execution:
        machine = self.machines.get(machine_arn)
        if machine is None:
            raise ServiceException(
                "StateMachineDoesNotExist", f"State Machine Does Not Exist: '{machine_arn}'"
            )
        name = name or str(uuid.uuid4())
        if not _valid_name(name):
            raise ServiceException("InvalidName", f"Invalid Name: '{name}'")
        input_text = "{}" if input_text is None else input_text
        try:
            json.loads(input_text)
        except ValueError as error:
            raise ServiceException(
                "InvalidExecutionInput", f"Invalid State Machine Execution Input: {error}"
            ) from None
        arn = f"arn:aws:states:{self.region}:{self.account_id}:execution:{machine.name}:{name}"
        with self._lock:
            existing = self._executions.get(arn)
            if existing is not None:
                if existing.status == "RUNNING" and existing.input == input_text:
                    return existing  # StartExecution is idempotent for a running same-input execution
                raise ServiceException("ExecutionAlreadyExists", f"Execution Already Exists: '{arn}'")
            execution = Execution(arn, machine_arn, name, "RUNNING", time.time(), input_text)
            execution.events.append(self._event("ExecutionStarted", {"input": input_text}))
            self._executions[arn] = execution
            self._stops[arn] = threading.Event()
            self._save(execution)
        log.info("execution %s started", arn)
        self._queue.put(arn)
        return execution

    def _work(self) -> None:
        while True:
            arn = self._queue.get()
            if arn is None:
                return
            try:
                self._run(arn)
            except Exception:
                log.exception("execution %s crashed the executor", arn)

    def _event(self, kind: str, details: dict[str, Any]) -> dict[str, Any]:
        return {"timestamp": time.time(), "type": kind, **details}

    def _run(self, arn: str) -> None:
        execution = self._executions[arn]
        stop = self._stops[arn]
        machine = self.machines[execution.stateMachineArn]
        if stop.is_set():
            return
        lock = threading.Lock()

        def on_event(kind: str, details: dict[str, Any]) -> None:
            details = dict(details)
            state_type = details.pop("type", None)
            if kind in ("StateEntered", "StateExited"):
                log.info("%s: %s %s (%s)", execution.name, kind, details["name"], state_type)
                details["state_type"] = state_type
            else:
                log.info("%s: %s %s", execution.name, kind, details)
            with lock:
                if len(execution.events) < MAX_EVENTS:
                    execution.events.append(self._event(kind, _jsonable(details)))

        context = {
            "Execution": {
                "Id": arn,
                "Name": execution.name,
                "StartTime": _iso(execution.startDate),
                "Input": json.loads(execution.input),
                "RoleArn": f"arn:aws:iam::{self.account_id}:role/local",
                "RedriveCount": 0,
            },
            "StateMachine": {"Id": machine.arn, "Name": machine.name},
        }
        interpreter = Interpreter(self._invoke, stop=stop, on_event=on_event)
        try:
            output = interpreter.run(machine.definition, json.loads(execution.input), context)
            status, fields = "SUCCEEDED", {"output": json.dumps(output, separators=(",", ":"))}
        except StatesError as failure:
            status, fields = "FAILED", {"error": failure.error, "cause": failure.cause}
        except ExecutionStopped:
            return  # StopExecution has written the ABORTED record
        except Exception as exc:  # a bug here must not leave the execution RUNNING
            log.exception("execution %s: interpreter error", arn)
            status, fields = "FAILED", {"error": "States.Runtime", "cause": f"{type(exc).__name__}: {exc}"}
        with self._lock:
            if execution.status != "RUNNING" or self._closing:
                return  # aborted meanwhile, or cut short by a shutdown (FAILED at the next start)
            execution.status = status
            execution.stopDate = time.time()
            for key, value in fields.items():
                setattr(execution, key, value)
            execution.events.append(self._event(f"Execution{status.title()}", fields))
            self._save(execution)
        log.info("execution %s %s%s", arn, status, f" ({execution.error})" if execution.error else "")
        self._announce(execution)

    def _invoke(self, function: str, payload: Any) -> Any:
        event = json.loads(json.dumps(payload))  # what the function gets is JSON, as over the wire
        try:
            result = self.functions.invoke(function, event)
        except FunctionNotFound:
            raise StatesError("Lambda.ResourceNotFoundException", f"Function not found: {function}") from None
        except FunctionError as error:
            raise StatesError(error.error_type, json.dumps(error.payload())) from None
        try:
            return json.loads(json.dumps(result))
        except (TypeError, ValueError) as error:
            raise StatesError("Runtime.MarshalError", f"Unable to marshal response: {error}") from None

    # -------------------------------------------------------- status change events

    def _announce(self, execution: Execution) -> None:
        """Sends the status change event of an ended execution to the functions whose rules match it
        (the EventBridge event AWS sends: `detail` has executionArn, stateMachineArn, name, status,
        input, output, error, cause)."""
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Step Functions Execution Status Change",
            "source": "aws.states",
            "account": self.account_id,
            "time": _iso(execution.stopDate or time.time()),
            "region": self.region,
            "resources": [execution.executionArn],
            "detail": {
                k: int(v * 1000) if k in ("startDate", "stopDate") and v else v
                for k, v in asdict(execution).items()
                if k != "events"
            },
        }
        for spec in self.functions.specs():
            if any(event_pattern_matches(rule, event) for rule in spec.event_rules):
                try:
                    self.functions.invoke(spec.logical_id, event)
                    log.info("status change of %s delivered to %s", execution.name, spec.logical_id)
                except FunctionError:
                    log.exception("%s failed on a status change event", spec.logical_id)

    # -------------------------------------------------------- API

    def _execution(self, arn: str) -> Execution:
        execution = self._executions.get(arn)
        if execution is None:
            raise ServiceException("ExecutionDoesNotExist", f"Execution Does Not Exist: '{arn}'")
        return execution

    def stop_execution(self, arn: str, error: str | None, cause: str | None) -> Execution:
        with self._lock:
            execution = self._execution(arn)
            if execution.status == "RUNNING":
                execution.status = "ABORTED"
                execution.stopDate = time.time()
                execution.error, execution.cause = error, cause
                execution.events.append(self._event("ExecutionAborted", {"error": error, "cause": cause}))
                self._save(execution)
                if arn in self._stops:
                    self._stops[arn].set()
            else:
                return execution
        self._announce(execution)
        return execution

    def handle(self, operation: str, request: dict[str, Any]) -> dict[str, Any]:
        if operation == "StartExecution":
            execution = self.start_execution(
                request["stateMachineArn"], request.get("name"), request.get("input")
            )
            return {"executionArn": execution.executionArn, "startDate": execution.startDate}
        if operation == "DescribeExecution":
            return self._execution(request["executionArn"]).describe()
        if operation == "StopExecution":
            execution = self.stop_execution(
                request["executionArn"], request.get("error"), request.get("cause")
            )
            return {"stopDate": execution.stopDate or time.time()}
        if operation == "ListExecutions":
            return self._list_executions(request)
        if operation == "GetExecutionHistory":
            return self._history(request)
        if operation == "ListStateMachines":
            return {
                "stateMachines": [
                    {
                        "stateMachineArn": m.arn,
                        "name": m.name,
                        "type": "STANDARD",
                        "creationDate": self.created,
                    }
                    for m in self.machines.values()
                ]
            }
        if operation == "DescribeStateMachine":
            machine = self.machines.get(request["stateMachineArn"])
            if machine is None:
                raise ServiceException(
                    "StateMachineDoesNotExist", f"State Machine Does Not Exist: '{request}'"
                )
            return {
                "stateMachineArn": machine.arn,
                "name": machine.name,
                "status": "ACTIVE",
                "definition": json.dumps(machine.definition, indent=2),
                "roleArn": f"arn:aws:iam::{self.account_id}:role/local",
                "type": "STANDARD",
                "creationDate": self.created,
            }
        raise ServiceException("UnknownOperationException", f"{operation} is not supported locally")

    def _list_executions(self, request: dict[str, Any]) -> dict[str, Any]:
        arn = request.get("stateMachineArn")
        if arn not in self.machines:
            raise ServiceException("StateMachineDoesNotExist", f"State Machine Does Not Exist: '{arn}'")
        wanted = request.get("statusFilter")
        with self._lock:
            matching = [
                e
                for e in self._executions.values()
                if e.stateMachineArn == arn and (wanted is None or e.status == wanted)
            ]
        matching.sort(key=lambda e: e.startDate, reverse=True)
        return _page([e.summary() for e in matching], "executions", request)

    def _history(self, request: dict[str, Any]) -> dict[str, Any]:
        execution = self._execution(request["executionArn"])
        events = []
        for index, raw in enumerate(list(execution.events), start=1):
            kind = raw["type"]
            event: dict[str, Any] = {"timestamp": raw["timestamp"], "id": index, "previousEventId": index - 1}
            if kind in ("StateEntered", "StateExited"):
                state_type = raw.get("state_type", "Task")
                event["type"] = f"{state_type}{kind}"
                key = "stateEnteredEventDetails" if kind == "StateEntered" else "stateExitedEventDetails"
                payload = raw.get("input") if kind == "StateEntered" else raw.get("output")
                event[key] = {
                    "name": raw.get("name"),
                    ("input" if kind == "StateEntered" else "output"): payload,
                }
            elif kind.startswith("Execution"):
                event["type"] = kind
                detail_key = kind[0].lower() + kind[1:] + "EventDetails"
                event[detail_key] = {
                    k: v for k, v in raw.items() if k not in ("timestamp", "type") and v is not None
                }
            else:
                continue
            events.append(event)
        if request.get("reverseOrder"):
            events.reverse()
        return _page(events, "events", request)

    # -------------------------------------------------------- the awsJson1_0 endpoint

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        request_id = str(uuid.uuid4())
        try:
            if not target.startswith("AWSStepFunctions."):
                raise ServiceException("UnknownOperationException", f"Unknown target {target!r}")
            request = json.loads(raw or b"{}")
            result = self.handle(target.split(".", 1)[1], request)
            status, body = 200, result
        except ServiceException as error:
            status, body = error.status, {"__type": error.code, "message": error.message}
        except (KeyError, ValueError) as error:
            status, body = 400, {"__type": "ValidationException", "message": f"Invalid request: {error}"}
        data = json.dumps(body).encode()
        start_response(
            f"{status} {'OK' if status == 200 else 'Bad Request'}",
            [
                ("Content-Type", "application/x-amz-json-1.0"),
                ("Content-Length", str(len(data))),
                ("x-amzn-RequestId", request_id),
            ],
        )
        return [data]

    def shutdown(self) -> None:
        """Stops the workers without waiting for executions: records left RUNNING fail on restart."""
        self._closing = True
        with self._lock:
            for stop in self._stops.values():
                stop.set()
        for _ in self._workers:
            self._queue.put(None)

    def wait(self, arn: str, timeout_s: float = 30) -> Execution:
        """Test helper: blocks until the execution ends."""
        deadline = time.monotonic() + timeout_s
        while self._execution(arn).status == "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.02)
        return self._execution(arn)


def _page(items: list[dict[str, Any]], key: str, request: dict[str, Any]) -> dict[str, Any]:
    size = int(request.get("maxResults") or 100) or 100
    start = 0
    if request.get("nextToken"):
        with contextlib.suppress(ValueError):
            start = int(request["nextToken"])
    result: dict[str, Any] = {key: items[start : start + size]}
    if start + size < len(items):
        result["nextToken"] = str(start + size)
    return result


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch * 1000) % 1000:03d}Z"


def _jsonable(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return str(value)
