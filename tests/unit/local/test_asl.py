"""openlookout.local.asl: each state type, paths, intrinsics, Retry/Catch, Map, Parallel."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from openlookout.local.asl import LAMBDA_INVOKE, ExecutionStopped, Interpreter, StatesError
from openlookout.local.asl_data import apply_template, choice_matches, evaluate_expression, get_path, set_path

CONTEXT = {"Execution": {"Id": "arn:exec", "Name": "e1"}}


class Lambdas:
    """Fake functions by name; records calls; raises exceptions it's given."""

    def __init__(self, **functions: Any) -> None:
        self.functions = functions
        self.calls: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, name: str, payload: Any) -> Any:
        short = name.rsplit(":", 1)[-1]
        with self.lock:
            self.calls.append((short, payload))
        result = self.functions[short]
        return result(payload) if callable(result) else result


def run(definition: dict[str, Any], data: Any, lambdas: Lambdas | None = None, **kwargs: Any) -> Any:
    sleeps: list[float] = kwargs.pop("sleeps", [])
    interpreter = Interpreter(lambdas or Lambdas(), sleep=sleeps.append, **kwargs)
    return interpreter.run(definition, data, dict(CONTEXT))


def one(state: dict[str, Any]) -> dict[str, Any]:
    return {"StartAt": "S", "States": {"S": {**state, "End": True}}}


# ---------------------------------------------------------------- paths and templates


def test_paths() -> None:
    data = {"a": {"b": [10, {"c": "x"}]}, "odd key": 1, "list": [{"v": 1}, {"v": 2}]}
    assert get_path(data, "$") is data
    assert get_path(data, "$.a.b[0]") == 10
    assert get_path(data, "$.a.b[1].c") == "x"
    assert get_path(data, "$['odd key']") == 1
    assert get_path(data, "$.list[*].v") == [1, 2]
    assert get_path(data, "$$.Execution.Id", CONTEXT) == "arn:exec"
    with pytest.raises(StatesError) as caught:
        get_path(data, "$.missing")
    assert caught.value.error == "States.Runtime"


def test_set_path_copies_and_creates() -> None:
    data = {"a": 1}
    assert set_path(data, "$.r.s", 2) == {"a": 1, "r": {"s": 2}}
    assert data == {"a": 1}
    assert set_path(data, "$", 5) == 5


def test_payload_template_and_intrinsics() -> None:
    data = {"name": "x", "n": 3, "items": [1, 2, 3, 4, 5], "doc": '{"k": [1]}'}
    template = {
        "literal": {"nested.$": "$.name"},
        "list": [{"v.$": "$.n"}],
        "fmt.$": "States.Format('{} has {} \\'items\\'', $.name, $.n)",
        "parsed.$": "States.StringToJson($.doc)",
        "text.$": "States.JsonToString($.items)",
        "array.$": "States.Array($.n, 'a', true, null)",
        "parts.$": "States.ArrayPartition($.items, 2)",
        "sum.$": "States.MathAdd($.n, -1)",
        "len.$": "States.ArrayLength(States.Array(1, 2))",
        "ctx.$": "$$.Execution.Name",
    }
    assert apply_template(template, data, CONTEXT) == {
        "literal": {"nested": "x"},
        "list": [{"v": 3}],
        "fmt": "x has 3 'items'",
        "parsed": {"k": [1]},
        "text": "[1,2,3,4,5]",
        "array": [3, "a", True, None],
        "parts": [[1, 2], [3, 4], [5]],
        "sum": 2,
        "len": 2,
        "ctx": "e1",
    }
    with pytest.raises(StatesError):
        evaluate_expression("States.Nope(1)", {}, {})


# ---------------------------------------------------------------- Choice


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"Variable": "$.s", "StringEquals": "abc"}, True),
        ({"Variable": "$.s", "StringMatches": "a*c"}, True),
        ({"Variable": "$.s", "StringLessThan": "b"}, True),
        ({"Variable": "$.n", "NumericEquals": 5}, True),
        ({"Variable": "$.n", "NumericGreaterThanEquals": 6}, False),
        ({"Variable": "$.n", "NumericLessThanPath": "$.m"}, True),
        ({"Variable": "$.b", "BooleanEquals": False}, True),
        ({"Variable": "$.t", "TimestampGreaterThan": "2020-01-01T00:00:00Z"}, True),
        ({"Variable": "$.x", "IsPresent": False}, True),
        ({"Variable": "$.z", "IsNull": True}, True),
        ({"Variable": "$.n", "IsNumeric": True}, True),
        ({"Variable": "$.s", "IsString": True}, True),
        ({"Variable": "$.s", "NumericEquals": 5}, False),  # type mismatch is no match
        (
            {
                "And": [
                    {"Variable": "$.n", "NumericEquals": 5},
                    {"Not": {"Variable": "$.b", "BooleanEquals": True}},
                ]
            },
            True,
        ),
        ({"Or": [{"Variable": "$.n", "NumericEquals": 1}, {"Variable": "$.s", "StringEquals": "no"}]}, False),
    ],
)
def test_choice_rules(rule: dict[str, Any], expected: bool) -> None:
    data = {"s": "abc", "n": 5, "m": 7, "b": False, "t": "2024-05-01T10:00:00Z", "z": None}
    assert choice_matches(rule, data, CONTEXT) is expected


def test_choice_state_default_and_no_match() -> None:
    definition: dict[str, Any] = {
        "StartAt": "C",
        "States": {
            "C": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.n", "NumericGreaterThan": 1, "Next": "Big"}],
                "Default": "Small",
            },
            "Big": {"Type": "Pass", "Result": "big", "End": True},
            "Small": {"Type": "Pass", "Result": "small", "End": True},
        },
    }
    assert run(definition, {"n": 2}) == "big"
    assert run(definition, {"n": 0}) == "small"
    del definition["States"]["C"]["Default"]
    with pytest.raises(StatesError) as caught:
        run(definition, {"n": 0})
    assert caught.value.error == "States.NoChoiceMatched"


# ---------------------------------------------------------------- Pass, Wait, Succeed, Fail


def test_pass_result_parameters_and_io_paths() -> None:
    assert run(one({"Type": "Pass", "Result": {"x": 1}, "ResultPath": "$.r"}), {"a": 0}) == {
        "a": 0,
        "r": {"x": 1},
    }
    assert run(one({"Type": "Pass", "Parameters": {"y.$": "$.a"}}), {"a": 4}) == {"y": 4}
    state = {"Type": "Pass", "InputPath": "$.in", "ResultPath": "$.out", "OutputPath": "$.out"}
    assert run(one(state), {"in": {"v": 1}}) == {"v": 1}
    assert run(one({"Type": "Pass", "ResultPath": None}), {"keep": 1}) == {"keep": 1}


def test_wait_seconds_and_seconds_path() -> None:
    sleeps: list[float] = []
    definition = {
        "StartAt": "W1",
        "States": {
            "W1": {"Type": "Wait", "Seconds": 2, "Next": "W2"},
            "W2": {"Type": "Wait", "SecondsPath": "$.delay", "Next": "Done"},
            "Done": {"Type": "Succeed"},
        },
    }
    assert run(definition, {"delay": 3}, sleeps=sleeps) == {"delay": 3}
    assert sleeps == [2.0, 3.0]


def test_fail_state() -> None:
    with pytest.raises(StatesError) as caught:
        run({"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "My.Error", "Cause": "because"}}}, {})
    assert (caught.value.error, caught.value.cause) == ("My.Error", "because")
    with pytest.raises(StatesError) as caught:
        run(
            {"StartAt": "F", "States": {"F": {"Type": "Fail", "ErrorPath": "$.e", "CausePath": "$.c"}}},
            {"e": "E", "c": "C"},
        )
    assert (caught.value.error, caught.value.cause) == ("E", "C")


# ---------------------------------------------------------------- Task, Retry, Catch


def test_task_lambda_arn_and_optimized_invoke() -> None:
    lambdas = Lambdas(fn=lambda payload: {"got": payload})
    arn = "arn:aws:lambda:us-east-1:000000000000:function:fn"
    direct = one({"Type": "Task", "Resource": arn, "Parameters": {"v.$": "$.v"}, "ResultPath": "$.r"})
    assert run(direct, {"v": 1}, lambdas) == {"v": 1, "r": {"got": {"v": 1}}}
    invoke = one(
        {
            "Type": "Task",
            "Resource": LAMBDA_INVOKE,
            "Parameters": {"FunctionName": arn, "Payload": {"v.$": "$.v"}},
            "ResultSelector": {"p.$": "$.Payload", "code.$": "$.StatusCode"},
        }
    )
    assert run(invoke, {"v": 2}, lambdas) == {"p": {"got": {"v": 2}}, "code": 200}


def test_retry_backoff_then_success() -> None:
    failures = iter([StatesError("Busy", "1"), StatesError("Busy", "2")])

    def flaky(payload: Any) -> Any:
        error = next(failures, None)
        if error:
            raise error
        return "ok"

    sleeps: list[float] = []
    state = {
        "Type": "Task",
        "Resource": "arn:aws:lambda:r:a:function:flaky",
        "Retry": [
            {"ErrorEquals": ["Other"], "MaxAttempts": 5},
            {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 2, "BackoffRate": 3, "MaxAttempts": 3},
        ],
    }
    assert run(one(state), {}, Lambdas(flaky=flaky), sleeps=sleeps) == "ok"
    assert sleeps == [2.0, 6.0]


def test_retry_exhausted_then_catch_with_result_path() -> None:
    def broken(payload: Any) -> Any:
        raise StatesError("ValueError", '{"errorMessage": "bad"}')

    lambdas = Lambdas(broken=broken, fallback="recovered")
    definition = {
        "StartAt": "T",
        "States": {
            "T": {
                "Type": "Task",
                "Resource": "arn:aws:lambda:r:a:function:broken",
                "Retry": [{"ErrorEquals": ["States.TaskFailed"], "MaxAttempts": 2, "IntervalSeconds": 1}],
                "Catch": [
                    {"ErrorEquals": ["KeyError"], "Next": "Wrong"},
                    {"ErrorEquals": ["ValueError"], "ResultPath": "$.err", "Next": "Handle"},
                ],
                "End": True,
            },
            "Wrong": {"Type": "Fail", "Error": "wrong"},
            "Handle": {"Type": "Pass", "End": True},
        },
    }
    sleeps: list[float] = []
    output = run(definition, {"in": 1}, lambdas, sleeps=sleeps)
    assert output == {"in": 1, "err": {"Error": "ValueError", "Cause": '{"errorMessage": "bad"}'}}
    assert len([c for c in lambdas.calls if c[0] == "broken"]) == 3  # 1 + 2 retries
    assert sleeps == [1.0, 2.0]


def test_states_all_does_not_catch_runtime_errors() -> None:
    definition = one(
        {"Type": "Pass", "InputPath": "$.missing", "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "X"}]}
    )
    definition["States"]["X"] = {"Type": "Succeed"}
    with pytest.raises(StatesError) as caught:
        run(definition, {})
    assert caught.value.error == "States.Runtime"


def test_task_timeout() -> None:
    def slow(payload: Any) -> Any:
        time.sleep(1)
        return "late"

    state = {"Type": "Task", "Resource": "arn:aws:lambda:r:a:function:slow", "TimeoutSeconds": 0.05}
    with pytest.raises(StatesError) as caught:
        run(one(state), {}, Lambdas(slow=slow))
    assert caught.value.error == "States.Timeout"


def test_unsupported_resource_fails_clearly() -> None:
    with pytest.raises(StatesError) as caught:
        run(one({"Type": "Task", "Resource": "arn:aws:states:::sagemaker:createTrainingJob.sync"}), {})
    assert "sagemaker" in caught.value.cause


# ---------------------------------------------------------------- Map and Parallel


def test_map_with_item_selector_context_and_concurrency() -> None:
    active, peak = [0], [0]
    lock = threading.Lock()

    def work(payload: Any) -> Any:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.02)
        with lock:
            active[0] -= 1
        return payload["value"] * 10 + payload["index"]

    definition = one(
        {
            "Type": "Map",
            "ItemsPath": "$.items",
            "MaxConcurrency": 2,
            "ItemSelector": {
                "value.$": "$$.Map.Item.Value",
                "index.$": "$$.Map.Item.Index",
                "tag.$": "$.tag",
            },
            "ItemProcessor": {
                "StartAt": "Work",
                "States": {
                    "Work": {"Type": "Task", "Resource": "arn:aws:lambda:r:a:function:work", "End": True}
                },
            },
            "ResultPath": "$.results",
        }
    )
    output = run(definition, {"items": [1, 2, 3, 4, 5], "tag": "t"}, Lambdas(work=work))
    assert output["results"] == [10, 21, 32, 43, 54]
    assert peak[0] <= 2


def test_map_legacy_iterator_and_failure_propagates() -> None:
    definition = one(
        {
            "Type": "Map",
            "Iterator": {
                "StartAt": "C",
                "States": {
                    "C": {
                        "Type": "Choice",
                        "Choices": [{"Variable": "$", "NumericEquals": 2, "Next": "Boom"}],
                        "Default": "Ok",
                    },
                    "Boom": {"Type": "Fail", "Error": "Two"},
                    "Ok": {"Type": "Pass", "End": True},
                },
            },
            "Catch": [{"ErrorEquals": ["Two"], "ResultPath": "$.caught", "Next": "After"}],
        }
    )
    definition["States"]["After"] = {"Type": "Pass", "End": True}
    assert run(definition, [1, 3]) == [1, 3]
    with pytest.raises(StatesError):
        run({"StartAt": "S", "States": {"S": {**definition["States"]["S"], "Catch": []}}}, [1, 2])


def test_parallel_branches() -> None:
    definition = one(
        {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": "a", "End": True}}},
                {"StartAt": "B", "States": {"B": {"Type": "Pass", "InputPath": "$.x", "End": True}}},
            ],
            "ResultSelector": {"first.$": "$[0]", "second.$": "$[1]"},
        }
    )
    assert run(definition, {"x": 7}) == {"first": "a", "second": 7}


def test_stop_event_interrupts_a_wait() -> None:
    stop = threading.Event()
    interpreter = Interpreter(Lambdas(), stop=stop)
    timer = threading.Timer(0.05, stop.set)
    timer.start()
    started = time.monotonic()
    with pytest.raises(ExecutionStopped):
        interpreter.run(one({"Type": "Wait", "Seconds": 30}), {}, dict(CONTEXT))
    assert time.monotonic() - started < 5


def test_events_report_each_transition() -> None:
    events: list[tuple[str, str]] = []
    definition = {
        "StartAt": "A",
        "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Succeed"}},
    }
    Interpreter(Lambdas(), on_event=lambda kind, d: events.append((kind, d["name"]))).run(definition, {}, {})
    assert events == [
        ("StateEntered", "A"),
        ("StateExited", "A"),
        ("StateEntered", "B"),
        ("StateExited", "B"),
    ]
