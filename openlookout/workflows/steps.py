"""The one way every workflow step runs, whatever its function: the recipe, and each step's entry.

A state machine's Task names a template function and, for the functions that run several small
steps, a "Step" parameter. Each workflow module (training, hosting, packaging, dataset_import)
lists its steps in a `STEPS` table: that pair -> the step's input contract, its output contract
and the code that runs it (workflows/contracts.py holds the models). A function's handler is
`step_handler(function, <the tables of the modules it runs>)`, so a function imports only its own
workflows (the training image carries no packaging code). Every step runs the same way: its input
parsed with Powertools' parser, the step, its output validated against its contract, logged and
traced like every Lambda invocation. tests/unit/test_workflow_contracts.py checks every path of
every state machine against the tables, and that every Task has exactly one step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from openlookout.core.observability import LambdaHandler, lambda_entry, logger
from openlookout.workflows import contracts as c

StepResult = Mapping[str, Any] | BaseModel


@dataclass(frozen=True)
class Step:
    input: type[c.Model]
    output: type[c.Model] | None  # None: the step's answer is free-form (a model's load report)
    run: Callable[..., StepResult]
    timed: bool = False  # run(input, seconds_left): a looping step that stops before its timeout


# (the template's function, the Task's "Step" parameter) -> the step.
Steps = dict[tuple[str, str | None], Step]


def step_error(step: Any) -> dict[str, Any] | None:
    """What a Catch put at the step's Error, as the failure steps read it."""
    return step.Error.model_dump(exclude_unset=True) if step.Error is not None else None


def seconds_left(context: Any, default: float = 300.0) -> float:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return remaining() / 1000.0 if callable(remaining) else default


def run_step(steps: Steps, function: str, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    """Runs the step that `event` asks `function` for, checked against its contracts."""
    step = steps.get((function, event.get("Step")))
    if step is None:
        raise ValueError(f"{function} has no step {event.get('Step')!r}")
    parsed = c.read(event, step.input)
    result = step.run(parsed, seconds_left(context)) if step.timed else step.run(parsed)
    answer = result if isinstance(result, BaseModel) else dict(result)
    if step.output is None:
        return dict(answer) if not isinstance(answer, BaseModel) else c.dump(answer)
    return c.dump(step.output.model_validate(answer))


def step_handler(function: str, *tables: Steps, log_event: bool = False) -> LambdaHandler:
    """The Lambda handler of a template function that runs workflow steps (from these tables)."""
    steps = {key: step for table in tables for key, step in table.items() if key[0] == function}
    if not steps:
        raise ValueError(f"no step of {function} in the tables given")

    @lambda_entry(log_event=log_event)
    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        logger.append_keys(step=event.get("Step") or function)
        return run_step(steps, function, event, context)

    return lambda_handler
