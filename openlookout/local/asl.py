"""A compact interpreter of the Amazon States Language (JSONPath flavour), for local executions.

It runs the same .asl.json files that Step Functions runs in AWS, with Lambda tasks calling the
template's handlers in this process. Covered: Task (Lambda function ARN and
`arn:aws:states:::lambda:invoke`), Choice, Map (inline), Parallel, Pass, Wait, Succeed, Fail;
Retry/Catch; InputPath/Parameters/ItemSelector/ResultSelector/ResultPath/OutputPath; the
context object; the common intrinsic functions. Not covered: JSONata, distributed Map,
callback (.waitForTaskToken) and .sync integrations, Task timeouts and heartbeats.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import logging
import random
import re
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("serve.asl")

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
_NOTHING = object()


class StatesError(Exception):
    """A failure with an ASL error name (`States.TaskFailed`, a Lambda's exception class, ...)."""

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause


class ExecutionStopped(Exception):
    """StopExecution was called: unwinds the interpreter without Catch."""


# ---------------------------------------------------------------- JSONPath (the ASL subset)

_PATH_TOKEN = re.compile(r"\.([A-Za-z_$][\w$-]*)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]|\[\*\]|\.\*")


def _tokens(path: str) -> list[str | int | None]:
    """`$.a.b[0]['c d'][*]` -> ['a', 'b', 0, 'c d', None]; None means every element."""
    if not path.startswith("$"):
        raise StatesError("States.Runtime", f"Invalid JSONPath {path!r}")
    rest, tokens, position = path[1:], [], 0
    while position < len(rest):
        match = _PATH_TOKEN.match(rest, position)
        if match is None:
            raise StatesError("States.Runtime", f"Invalid JSONPath {path!r}")
        name, index, quoted, double = match.groups()
        if name is not None:
            tokens.append(name)
        elif index is not None:
            tokens.append(int(index))
        elif quoted is not None or double is not None:
            tokens.append(quoted if quoted is not None else double)
        else:
            tokens.append(None)
        position = match.end()
    return tokens


def _walk(value: Any, tokens: list[str | int | None]) -> Any:
    for position, token in enumerate(tokens):
        if token is None:
            items = value.values() if isinstance(value, dict) else value
            if not isinstance(items, list | type({}.values())):
                return _NOTHING
            results = [_walk(item, tokens[position + 1 :]) for item in items]
            return [r for r in results if r is not _NOTHING]
        if isinstance(token, int):
            if not isinstance(value, list) or token >= len(value):
                return _NOTHING
            value = value[token]
        else:
            if not isinstance(value, dict) or token not in value:
                return _NOTHING
            value = value[token]
    return value


def get_path(data: Any, path: str, context: Any = None) -> Any:
    """Reads a reference path (`$.x`, or `$$.x` for the context object); missing -> States.Runtime."""
    value = lookup(data, path, context)
    if value is _NOTHING:
        raise StatesError("States.Runtime", f"The JSONPath {path!r} could not be found in the input")
    return value


def lookup(data: Any, path: str, context: Any = None) -> Any:
    if path.startswith("$$"):
        return _walk(context, _tokens(path[1:]))
    return _walk(data, _tokens(path))


def set_path(data: Any, path: str, value: Any) -> Any:
    """ResultPath: returns `data` with `value` placed at `path` (a copy; `$` replaces the whole)."""
    tokens = _tokens(path)
    if not tokens:
        return value
    result = copy.deepcopy(data) if isinstance(data, dict | list) else {}
    if not isinstance(result, dict):
        raise StatesError("States.Runtime", f"ResultPath {path!r} needs an object input")
    cursor: Any = result
    for token in tokens[:-1]:
        if not isinstance(token, str):
            raise StatesError("States.Runtime", f"Unsupported ResultPath {path!r}")
        if not isinstance(cursor.get(token), dict):
            cursor[token] = {}
        cursor = cursor[token]
    last = tokens[-1]
    if not isinstance(last, str):
        raise StatesError("States.Runtime", f"Unsupported ResultPath {path!r}")
    cursor[last] = value
    return result


# ---------------------------------------------------------------- intrinsic functions


class _IntrinsicParser:
    """Parses `States.Format('{} x', $.a, States.Array(1, 2))` into a value, evaluating as it goes."""

    def __init__(self, text: str, data: Any, context: Any) -> None:
        self.text, self.position, self.data, self.context = text, 0, data, context

    def fail(self, message: str) -> StatesError:
        return StatesError("States.Runtime", f"{message} in intrinsic function {self.text!r}")

    def skip_space(self) -> None:
        while self.position < len(self.text) and self.text[self.position].isspace():
            self.position += 1

    def parse(self) -> Any:
        value = self.expression()
        self.skip_space()
        if self.position != len(self.text):
            raise self.fail("Unexpected text")
        return value

    def expression(self) -> Any:
        self.skip_space()
        text, start = self.text, self.position
        if text.startswith("States.", start):
            match = re.compile(r"States\.(\w+)\(").match(text, start)
            if not match:
                raise self.fail("Bad function call")
            self.position = match.end()
            args = []
            self.skip_space()
            if text[self.position : self.position + 1] == ")":
                self.position += 1
            else:
                while True:
                    args.append(self.expression())
                    self.skip_space()
                    char = text[self.position : self.position + 1]
                    self.position += 1
                    if char == ")":
                        break
                    if char != ",":
                        raise self.fail("Expected , or )")
            return call_intrinsic(match.group(1), args)
        if text.startswith("'", start):
            out, position = [], start + 1
            while position < len(text):
                char = text[position]
                if char == "\\" and position + 1 < len(text):
                    out.append(text[position + 1])
                    position += 2
                    continue
                if char == "'":
                    self.position = position + 1
                    return "".join(out)
                out.append(char)
                position += 1
            raise self.fail("Unterminated string")
        if text.startswith("$", start):
            match = re.compile(r"\$\$?[^,)\s]*").match(text, start)
            assert match
            self.position = match.end()
            return get_path(self.data, match.group(0), self.context)
        match = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?|true|false|null").match(text, start)
        if match:
            self.position = match.end()
            return json.loads(match.group(0))
        raise self.fail("Unexpected argument")


def _format(template: str, *args: Any) -> str:
    pieces = re.split(r"(?<!\\)\{\}", template)
    if len(pieces) - 1 != len(args):
        raise StatesError("States.Runtime", "States.Format: the number of arguments does not match {}")
    out = pieces[0]
    for arg, piece in zip(args, pieces[1:], strict=True):
        out += (
            json.dumps(arg, separators=(",", ":")) if isinstance(arg, dict | list) else _text(arg)
        ) + piece
    return out.replace("\\{", "{").replace("\\}", "}")


def _text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


INTRINSICS: dict[str, Callable[..., Any]] = {
    "Format": _format,
    "StringToJson": lambda text: json.loads(text),
    "JsonToString": _dumps,
    "Array": lambda *items: list(items),
    "ArrayPartition": lambda items, size: [items[i : i + int(size)] for i in range(0, len(items), int(size))],
    "ArrayContains": lambda items, value: value in items,
    "ArrayRange": lambda start, end, step: list(
        range(int(start), int(end) + (1 if step > 0 else -1), int(step))
    ),
    "ArrayGetItem": lambda items, index: items[int(index)],
    "ArrayLength": lambda items: len(items),
    "ArrayUnique": lambda items: [v for i, v in enumerate(items) if v not in items[:i]],
    "MathAdd": lambda a, b: a + b,
    "MathRandom": lambda start, end, *seed: random.Random(*seed[:1]).randrange(int(start), int(end)),
    "StringSplit": lambda text, separators: [
        p for p in re.split("|".join(map(re.escape, separators)), text) if p
    ],
    "UUID": lambda: str(uuid.uuid4()),
    "Base64Encode": lambda text: base64.b64encode(text.encode()).decode(),
    "Base64Decode": lambda text: base64.b64decode(text).decode(),
    "Hash": lambda data, algorithm: hashlib.new(
        algorithm.replace("-", "").lower(), _text(data).encode()
    ).hexdigest(),
    "JsonMerge": lambda a, b, deep=False: {**a, **b},
}


def call_intrinsic(name: str, args: list[Any]) -> Any:
    function = INTRINSICS.get(name)
    if function is None:
        raise StatesError("States.Runtime", f"Unsupported intrinsic function States.{name}")
    try:
        return function(*args)
    except StatesError:
        raise
    except Exception as exc:
        raise StatesError("States.IntrinsicFailure", f"States.{name}: {exc}") from exc


def evaluate_expression(expression: str, data: Any, context: Any) -> Any:
    if expression.startswith("States."):
        return _IntrinsicParser(expression, data, context).parse()
    return get_path(data, expression, context)


def apply_template(template: Any, data: Any, context: Any) -> Any:
    """Payload templates (Parameters, ItemSelector, ResultSelector): `"key.$": path-or-intrinsic`."""
    if isinstance(template, dict):
        out = {}
        for key, value in template.items():
            if key.endswith(".$") and isinstance(value, str):
                out[key[:-2]] = evaluate_expression(value, data, context)
            else:
                out[key] = apply_template(value, data, context)
        return out
    if isinstance(template, list):
        return [apply_template(item, data, context) for item in template]
    return template


# ---------------------------------------------------------------- Choice rules

_NUMERIC = {
    "Equals": lambda a, b: a == b,
    "LessThan": lambda a, b: a < b,
    "GreaterThan": lambda a, b: a > b,
    "LessThanEquals": lambda a, b: a <= b,
    "GreaterThanEquals": lambda a, b: a >= b,
}


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _glob_match(pattern: str, text: str) -> bool:
    parts = re.split(r"(?<!\\)\*", pattern)
    regex = ".*".join(re.escape(p.replace("\\*", "*").replace("\\\\", "\\")) for p in parts)
    return re.fullmatch(regex, text, re.DOTALL) is not None


def choice_matches(rule: dict[str, Any], data: Any, context: Any) -> bool:
    if "And" in rule:
        return all(choice_matches(r, data, context) for r in rule["And"])
    if "Or" in rule:
        return any(choice_matches(r, data, context) for r in rule["Or"])
    if "Not" in rule:
        return not choice_matches(rule["Not"], data, context)
    value = lookup(data, rule["Variable"], context)
    for operator, expected in rule.items():
        if operator in ("Variable", "Next"):
            continue
        if operator == "IsPresent":
            return (value is not _NOTHING) == expected
        if value is _NOTHING:
            if operator.startswith("Is"):
                return False
            raise StatesError(
                "States.Runtime",
                f"Invalid path {rule['Variable']!r}: the choice state's "
                "condition path references an invalid value.",
            )
        if operator.endswith("Path"):
            operator, expected = operator[:-4], get_path(data, expected, context)
        if operator == "IsNull":
            return (value is None) == expected
        if operator == "IsNumeric":
            return _is_number(value) == expected
        if operator == "IsString":
            return isinstance(value, str) == expected
        if operator == "IsBoolean":
            return isinstance(value, bool) == expected
        if operator == "IsTimestamp":
            return (_timestamp(value) is not None) == expected
        if operator == "StringMatches":
            return isinstance(value, str) and _glob_match(expected, value)
        if operator == "BooleanEquals":
            return isinstance(value, bool) and value == expected
        for prefix, accept in (
            ("String", lambda v: isinstance(v, str)),
            ("Numeric", _is_number),
            ("Timestamp", lambda v: _timestamp(v) is not None),
        ):
            if operator.startswith(prefix) and operator[len(prefix) :] in _NUMERIC:
                if not accept(value) or not accept(expected):
                    return False
                if prefix == "Timestamp":
                    value, expected = _timestamp(value), _timestamp(expected)
                return bool(_NUMERIC[operator[len(prefix) :]](value, expected))
        raise StatesError("States.Runtime", f"Unsupported Choice operator {operator}")
    raise StatesError("States.Runtime", "A Choice rule has no comparison")


# ---------------------------------------------------------------- the interpreter

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
            when = _timestamp(text)
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
