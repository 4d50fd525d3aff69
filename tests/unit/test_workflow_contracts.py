"""Every path of every state machine, checked against the workflow contracts (workflows/contracts.py).

A path the ASL reads (Parameters "x.$", intrinsic arguments, Choice variables, ItemsPath) must name
a field of the execution's state model; a ResultPath must name the field that holds the Task's
output model; a Task's Parameters must be exactly its step's input model, field by field and type
by type. Renaming a field on one side only fails here.
"""

from __future__ import annotations

import json
import re
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from openlookout.workflows import contracts, dataset_import, hosting, packaging, training

# Every step of every workflow module (each function runs the tables of the modules it imports).
STEPS = {**training.STEPS, **hosting.STEPS, **packaging.STEPS, **dataset_import.STEPS}

ROOT = Path(__file__).resolve().parents[2]
MACHINES = sorted(contracts.STATE_MODELS)
PATH_ARGUMENT = re.compile(r"(?<!\$)\$\.[A-Za-z0-9_.\[\]]+")  # not $$. (the context object)


def unwrap(annotation: Any) -> Any:
    """The annotation without its `| None`."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        return options[0] if len(options) == 1 else annotation
    return annotation


def resolve(model: Any, path: str) -> Any:
    """The annotation that `path` ($.A.B[0]) names in `model`; AssertionError when it names nothing."""
    annotation = model
    for token in re.findall(r"[A-Za-z0-9_]+|\[\d+\]", path[2:]):
        annotation = unwrap(annotation)
        if typing.get_origin(annotation) is dict or annotation is Any:
            return Any  # free-form below this point (a SageMaker description, a load report)
        if token.startswith("["):
            assert typing.get_origin(annotation) is list, f"{path}: {token} indexes a non-list"
            annotation = typing.get_args(annotation)[0]
            continue
        assert isinstance(annotation, type) and issubclass(annotation, BaseModel), f"{path}: {token}"
        assert token in annotation.model_fields, f"{path}: {annotation.__name__} has no field {token}"
        annotation = annotation.model_fields[token].annotation
    return annotation


def check_parameters(parameters: dict[str, Any], target: type[BaseModel] | None, state: Any) -> None:
    """Every "x.$" path resolves in the state; with a target model, the keys are exactly its fields."""
    for key, value in parameters.items():
        name = key.removesuffix(".$")
        field = None
        if target is not None:
            assert name in target.model_fields, f"{target.__name__} has no field {name}"
            field = target.model_fields[name].annotation
        if key.endswith(".$") and value.startswith("$$."):
            continue  # the context object, not the state
        if key.endswith(".$") and value.startswith("$."):
            source = resolve(state, value)
            if field is not None and source is not Any:
                assert unwrap(source) == unwrap(field), f"{key}: {source} into {field}"
        elif key.endswith(".$"):
            for argument in PATH_ARGUMENT.findall(value):
                resolve(state, argument)
        elif isinstance(value, dict):
            nested = unwrap(field) if field is not None else None
            check_parameters(value, nested if isinstance(nested, type) else None, state)
        elif field is not None:
            assert value in typing.get_args(field) or isinstance(value, unwrap(field)), (key, value)
    if target is not None:
        required = {name for name, info in target.model_fields.items() if info.is_required()}
        given = {key.removesuffix(".$") for key in parameters}
        assert required <= given, f"{target.__name__} needs {required - given}"


def contract_of(task: dict[str, Any]) -> tuple[Any, Any] | None:
    resource = task["Resource"]
    if not resource.startswith("${"):
        return None  # a service integration (SageMaker): only its paths are checked
    function = resource[2:-1].removesuffix("Arn")
    step = (task.get("Parameters") or {}).get("Step")
    assert (function, step) in STEPS, f"no step {step} in {function}"
    return STEPS[(function, step)].input, STEPS[(function, step)].output


def check_result_path(state: Any, path: str | None, output: Any) -> None:
    if path is None or output is None:
        return
    holder = resolve(state, path)
    options = typing.get_args(holder) or (holder,)
    assert output in options, f"{path} holds {holder}, not {output}"


def check_choice(state: Any, rule: dict[str, Any]) -> None:
    for nested in rule.get("And", []) + rule.get("Or", []) + ([rule["Not"]] if "Not" in rule else []):
        check_choice(state, nested)
    if "Variable" in rule:
        annotation = unwrap(resolve(state, rule["Variable"]))
        if "BooleanEquals" in rule:
            assert annotation is bool, rule
        if "StringEquals" in rule:
            assert annotation is str or rule["StringEquals"] in typing.get_args(annotation), rule


def check_states(states: dict[str, Any], state: Any) -> list[Any]:
    """Checks one state list against the model of what it runs on; returns its Tasks' outputs."""
    outputs = []
    for name, definition in states.items():
        kind = definition["Type"]
        if kind == "Choice":
            for rule in definition["Choices"]:
                check_choice(state, rule)
        if kind == "Task":
            contract = contract_of(definition)
            target, output = contract if contract else (None, None)
            if "Parameters" in definition:
                check_parameters(definition["Parameters"], target, state)
            else:  # the Task gets the state (or the Map item) as it is
                assert target in (None, state), f"{name} gets {state}, its step reads {target}"
            check_result_path(state, definition.get("ResultPath"), output)
            outputs.append(output)
        if kind == "Map":
            items = unwrap(resolve(state, definition["ItemsPath"]))
            assert typing.get_origin(items) is list, name
            processor = definition.get("ItemProcessor") or definition["Iterator"]
            (item_output,) = check_states(processor["States"], typing.get_args(items)[0])
            results = unwrap(resolve(state, definition["ResultPath"]))
            assert results == list[item_output], f"{name}: {results} is not a list of {item_output}"
        for catch in definition.get("Catch", []):
            check_result_path(state, catch["ResultPath"], contracts.StepError)
    return outputs


@pytest.mark.parametrize("machine", MACHINES)
def test_every_path_of_the_state_machine_is_in_the_contracts(machine: str) -> None:
    definition = json.loads((ROOT / "statemachines" / f"{machine}.asl.json").read_text())
    check_states(definition["States"], contracts.STATE_MODELS[machine])


def test_every_state_machine_has_a_contract() -> None:
    files = (ROOT / "statemachines").glob("*.asl.json")
    assert {path.name.removesuffix(".asl.json") for path in files} == set(MACHINES)


def test_a_renamed_field_is_caught() -> None:
    with pytest.raises(AssertionError, match="has no field Prepard"):
        resolve(contracts.TrainingState, "$.Prepard.JobSpec")
    with pytest.raises(AssertionError, match="needs"):
        check_parameters({"Step": "FinishTraining"}, contracts.FinishTrainingStep, contracts.TrainingState)


def tasks(states: dict[str, Any]) -> list[dict[str, Any]]:
    """Every Task of a state list, inside Maps and Parallels too."""
    found = []
    for definition in states.values():
        if definition["Type"] == "Task":
            found.append(definition)
        processor = definition.get("ItemProcessor") or definition.get("Iterator")
        for branch in ([processor] if processor else []) + definition.get("Branches", []):
            found.extend(tasks(branch["States"]))
    return found


def test_every_step_is_a_task_of_a_state_machine_and_a_function_of_the_template() -> None:
    from tests.template_support import resources

    used = {
        (task["Resource"][2:-1].removesuffix("Arn"), (task.get("Parameters") or {}).get("Step"))
        for path in (ROOT / "statemachines").glob("*.asl.json")
        for task in tasks(json.loads(path.read_text())["States"])
        if task["Resource"].startswith("${")
    }
    assert set(STEPS) == used
    assert {function for function, _ in STEPS} <= set(resources("AWS::Serverless::Function"))
