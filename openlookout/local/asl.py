"""A compact interpreter of the Amazon States Language (JSONPath flavour), for local executions.

It runs the same .asl.json files that Step Functions runs in AWS, with Lambda tasks calling the
template's handlers in this process. Covered: Task (Lambda function ARN and
`arn:aws:states:::lambda:invoke`), Choice, Map (inline), Parallel, Pass, Wait, Succeed, Fail;
Retry/Catch; InputPath/Parameters/ItemSelector/ResultSelector/ResultPath/OutputPath; the
context object; the common intrinsic functions. Not covered: JSONata, distributed Map,
callback (.waitForTaskToken) and .sync integrations, Task timeouts and heartbeats.
"""

from __future__ import annotations

import copy
import json
import logging
import random
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from openlookout.local.asl_data import (
    StatesError,
    apply_template,
    choice_matches,
    evaluate_expression,
    get_path,
    parse_timestamp,
    set_path,
)

log = logging.getLogger("serve.asl")

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"


class ExecutionStopped(Exception):
    """StopExecution was called: unwinds the interpreter without Catch."""


TaskInvoker = Callable[[str, Any], Any]  # (function name or ARN, payload) -> result


def _error_matches(names: list[str], error: str) -> bool:
    for name in names:
        if name == error:
            return True
        if name == "States.ALL" and error != "States.Runtime":
            return True
        if (
            name == "States.TaskFailed"
            and error not in ("States.Runtime", "States.Timeout")
            and (not error.startswith("States.") or error == "States.TaskFailed")
        ):
            return True
    return False


class Interpreter:
    """Runs one state machine definition. `invoke` calls a Lambda function in-process."""

    def __init__(
        self,
        invoke: TaskInvoker,
        stop: threading.Event | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        sleep: Callable[[float], None] | None = None,
        default_map_concurrency: int = 8,
    ) -> None:
        self.invoke = invoke
        self.stop = stop or threading.Event()
        self.on_event = on_event or (lambda kind, details: None)
        self._sleep = sleep
        self.default_map_concurrency = default_map_concurrency

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self._sleep is not None:
            self._sleep(seconds)
        elif self.stop.wait(seconds):
            raise ExecutionStopped()
        if self.stop.is_set():
            raise ExecutionStopped()

    def run(self, definition: dict[str, Any], data: Any, context: dict[str, Any]) -> Any:
        """Runs States from StartAt; returns the output or raises StatesError."""
        states = definition["States"]
        name = definition["StartAt"]
        while True:
            if self.stop.is_set():
                raise ExecutionStopped()
            state = states.get(name)
            if state is None:
                raise StatesError("States.Runtime", f"No state named {name!r}")
            context = {**context, "State": {"Name": name, "EnteredTime": _now(), "RetryCount": 0}}
            self.on_event("StateEntered", {"name": name, "type": state["Type"], "input": data})
            data, next_name = self.run_state(name, state, data, context)
            self.on_event("StateExited", {"name": name, "type": state["Type"], "output": data})
            if next_name is None:
                return data
            name = next_name

    # -------------------------------------------------------- one state

    def run_state(
        self, name: str, state: dict[str, Any], data: Any, context: dict[str, Any]
    ) -> tuple[Any, Any]:
        kind = state["Type"]
        if kind == "Choice":
            effective = self._input(state, data, context)
            for rule in state.get("Choices", []):
                if choice_matches(rule, effective, context):
                    return self._output(state, effective, context), rule["Next"]
            if "Default" in state:
                return self._output(state, effective, context), state["Default"]
            raise StatesError("States.NoChoiceMatched", f"No Choice matched in state {name!r}")
        if kind == "Succeed":
            return self._output(state, self._input(state, data, context), context), None
        if kind == "Fail":
            error = state.get("Error", "")
            cause = state.get("Cause", "")
            if "ErrorPath" in state:
                error = evaluate_expression(state["ErrorPath"], data, context)
            if "CausePath" in state:
                cause = evaluate_expression(state["CausePath"], data, context)
            raise StatesError(str(error), str(cause))
        if kind == "Wait":
            self._wait(state, data, context)
            effective = self._input(state, data, context)
            return self._output(state, effective, context), self._next(state)
        if kind in ("Pass", "Task", "Map", "Parallel"):
            return self._run_with_retry(name, state, data, context)
        raise StatesError("States.Runtime", f"Unsupported state type {kind!r} in {name!r}")

    def _next(self, state: dict[str, Any]) -> str | None:
        return None if state.get("End") else state["Next"]

    def _input(self, state: dict[str, Any], data: Any, context: Any) -> Any:
        input_path = state.get("InputPath", "$")
        return {} if input_path is None else get_path(data, input_path, context)

    def _output(self, state: dict[str, Any], data: Any, context: Any) -> Any:
        output_path = state.get("OutputPath", "$")
        return {} if output_path is None else get_path(data, output_path, context)

    def _merge_result(self, state: dict[str, Any], raw_input: Any, result: Any, context: Any) -> Any:
        if "ResultSelector" in state:
            result = apply_template(state["ResultSelector"], result, context)
        result_path = state.get("ResultPath", "$")
        merged = raw_input if result_path is None else set_path(raw_input, result_path, result)
        return self._output(state, merged, context)

    def _wait(self, state: dict[str, Any], data: Any, context: Any) -> None:
        if "Seconds" in state:
            seconds = float(state["Seconds"])
        elif "SecondsPath" in state:
            seconds = float(get_path(data, state["SecondsPath"], context))
        else:
            text = state.get("Timestamp") or get_path(data, state["TimestampPath"], context)
            when = parse_timestamp(text)
            if when is None:
                raise StatesError("States.Runtime", f"Invalid timestamp {text!r}")
            seconds = (when - datetime.now(UTC)).total_seconds()
        self.sleep(seconds)

    def _run_with_retry(
        self, name: str, state: dict[str, Any], data: Any, context: dict[str, Any]
    ) -> tuple[Any, Any]:
        attempts: dict[int, int] = {}
        while True:
            try:
                effective = self._input(state, data, context)
                result = self._execute(state, effective, context)
                return self._merge_result(state, data, result, context), self._next(state)
            except StatesError as failure:
                retrier = self._retrier(state, failure, attempts)
                if retrier is not None:
                    index, delay = retrier
                    self.on_event("StateRetry", {"name": name, "error": failure.error, "delay": delay})
                    self.sleep(delay)
                    context = {**context, "State": {**context["State"], "RetryCount": attempts[index]}}
                    continue
                for catcher in state.get("Catch", []):
                    if _error_matches(catcher["ErrorEquals"], failure.error):
                        error_output = {"Error": failure.error, "Cause": failure.cause}
                        result_path = catcher.get("ResultPath", "$")
                        caught = data if result_path is None else set_path(data, result_path, error_output)
                        self.on_event(
                            "StateCaught", {"name": name, "error": failure.error, "next": catcher["Next"]}
                        )
                        return caught, catcher["Next"]
                raise

    def _retrier(
        self, state: dict[str, Any], failure: StatesError, attempts: dict[int, int]
    ) -> tuple[int, float] | None:
        for index, retrier in enumerate(state.get("Retry", [])):
            if not _error_matches(retrier["ErrorEquals"], failure.error):
                continue
            done = attempts.get(index, 0)
            if done >= retrier.get("MaxAttempts", 3):
                return None  # the first matching retrier decides; exhausted means no retry
            attempts[index] = done + 1
            delay = retrier.get("IntervalSeconds", 1) * retrier.get("BackoffRate", 2.0) ** done
            if "MaxDelaySeconds" in retrier:
                delay = min(delay, retrier["MaxDelaySeconds"])
            if retrier.get("JitterStrategy") == "FULL":
                delay = random.uniform(0, delay)
            return index, float(delay)
        return None

    def _execute(self, state: dict[str, Any], effective: Any, context: dict[str, Any]) -> Any:
        kind = state["Type"]
        if kind == "Pass":
            if "Result" in state:
                return copy.deepcopy(state["Result"])
            if "Parameters" in state:
                return apply_template(state["Parameters"], effective, context)
            return effective
        if kind == "Task":
            payload = (
                apply_template(state["Parameters"], effective, context)
                if "Parameters" in state
                else effective
            )
            timeout = state.get("TimeoutSeconds")
            if "TimeoutSecondsPath" in state:
                timeout = get_path(effective, state["TimeoutSecondsPath"], context)
            if timeout is None:
                return self._task(state["Resource"], payload)
            return self._task_with_timeout(state["Resource"], payload, float(timeout))
        if kind == "Parallel":
            if "Parameters" in state:
                effective = apply_template(state["Parameters"], effective, context)
            return self._fan_out(
                [(branch, effective, context) for branch in state["Branches"]], len(state["Branches"])
            )
        return self._map(state, effective, context)

    def _task_with_timeout(self, resource: str, payload: Any, timeout: float) -> Any:
        """States.Timeout after `timeout` s. The handler can't be killed in-process: it runs on,
        detached, like a Lambda whose state machine gave up on it."""
        outcome: dict[str, Any] = {}
        done = threading.Event()

        def call() -> None:
            try:
                outcome["result"] = self._task(resource, payload)
            except BaseException as error:
                outcome["error"] = error
            finally:
                done.set()

        threading.Thread(target=call, name="asl-task", daemon=True).start()
        if not done.wait(timeout):
            raise StatesError("States.Timeout", f"The task did not finish within {timeout:g} seconds")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["result"]

    def _task(self, resource: str, payload: Any) -> Any:
        if resource.startswith(LAMBDA_INVOKE):
            if resource != LAMBDA_INVOKE:
                raise StatesError("States.Runtime", f"Unsupported integration pattern {resource}")
            if not isinstance(payload, dict) or "FunctionName" not in payload:
                raise StatesError("States.Runtime", "lambda:invoke needs Parameters.FunctionName")
            result = self.invoke(payload["FunctionName"], payload.get("Payload", {}))
            # The optimized integration's result: the Invoke API response, payload decoded.
            return {
                "ExecutedVersion": "$LATEST",
                "Payload": result,
                "SdkHttpMetadata": {"HttpStatusCode": 200, "HttpHeaders": {}},
                "SdkResponseMetadata": {"RequestId": str(uuid.uuid4())},
                "StatusCode": 200,
            }
        if resource.startswith("arn:aws:lambda:") or ":function:" in resource:
            return self.invoke(resource, payload)
        raise StatesError("States.Runtime", f"Unsupported Task resource {resource}")

    def _map(self, state: dict[str, Any], effective: Any, context: dict[str, Any]) -> Any:
        items = get_path(effective, state.get("ItemsPath", "$"), context)
        if not isinstance(items, list):
            raise StatesError(
                "States.Runtime", f"Map ItemsPath must select an array, got {type(items).__name__}"
            )
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor is None:
            raise StatesError("States.Runtime", "Map state without ItemProcessor")
        mode = (processor.get("ProcessorConfig") or {}).get("Mode", "INLINE")
        if mode != "INLINE":
            raise StatesError("States.Runtime", "Only INLINE Map runs locally")
        selector = state.get("ItemSelector", state.get("Parameters"))
        jobs = []
        for index, item in enumerate(items):
            item_context = {**context, "Map": {"Item": {"Index": index, "Value": item}}}
            item_input = apply_template(selector, effective, item_context) if selector is not None else item
            jobs.append((processor, item_input, item_context))
        concurrency = int(state.get("MaxConcurrency", 0)) or self.default_map_concurrency
        return self._fan_out(jobs, concurrency)

    def _fan_out(self, jobs: list[tuple[dict[str, Any], Any, dict[str, Any]]], concurrency: int) -> list[Any]:
        if not jobs:
            return []
        if concurrency <= 1 or len(jobs) == 1:
            return [self.run(definition, data, context) for definition, data, context in jobs]
        # One pool per Map/Parallel state: nested fan-outs can't starve each other.
        with ThreadPoolExecutor(min(concurrency, len(jobs)), thread_name_prefix="asl-branch") as pool:
            futures = [pool.submit(self.run, definition, data, context) for definition, data, context in jobs]
            results, first_error = [], None
            for future in futures:
                try:
                    results.append(future.result())
                except (StatesError, ExecutionStopped) as error:
                    first_error = first_error or error  # the others run to their end
            if first_error is not None:
                raise first_error
            return results


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def task_error(error_type: str, payload: dict[str, Any]) -> StatesError:
    """The error a Lambda task fails with: the exception's class name, the Lambda error as cause."""
    return StatesError(error_type, json.dumps(payload))


__all__ = ["LAMBDA_INVOKE", "ExecutionStopped", "Interpreter", "StatesError"]
