"""The steps that one function runs for several states, chosen by the state's "Step" parameter.

ModelWorkflowFunction runs the small steps of the training and hosting state machines,
PackagingWorkflowFunction those of the packaging one. Each step's input is parsed into its
contract (workflows/contracts.py) before it runs, and its output is checked against its contract
before it goes back to the state machine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from openlookout.workflows import contracts as c
from openlookout.workflows import hosting, packaging, training

Step = Callable[[Any], Mapping[str, Any]]


def _error(step: Any) -> dict[str, Any] | None:
    return step.Error.model_dump(exclude_unset=True) if step.Error is not None else None


MODEL_WORKFLOW: dict[type[c.Model], Step] = {
    c.PrepareTrainingStep: lambda s: training.prepare(s.ProjectName, s.ModelVersion),
    c.ReadJobResultStep: lambda s: training.read_job_result(s.JobSpec.Bucket, s.JobSpec.Key),
    c.FinishTrainingStep: lambda s: training.finish(s.ProjectName, s.ModelVersion, c.dump(s.Result)),
    c.FailTrainingStep: lambda s: training.fail(s.ProjectName, s.ModelVersion, _error(s)),
    c.MarkHostedStep: lambda s: hosting.mark_hosted(s.ProjectName, s.ModelVersion),
    c.MarkHostingFailedStep: lambda s: hosting.mark_hosting_failed(s.ProjectName, s.ModelVersion, _error(s)),
    c.MarkStoppedStep: lambda s: hosting.mark_stopped(s.ProjectName, s.ModelVersion),
}

PACKAGING_WORKFLOW: dict[type[c.Model], Step] = {
    c.MarkRunningStep: lambda s: packaging.mark_running(s.ProjectName, s.JobName),
    c.PackageStep: lambda s: packaging.package(s.ProjectName, s.JobName),
    c.FailPackagingStep: lambda s: packaging.fail(s.ProjectName, s.JobName, _error(s)),
}


def _run(function: str, steps: dict[type[c.Model], Step], event: Mapping[str, Any]) -> dict[str, Any]:
    contract = c.STEP_CONTRACTS.get((function, event.get("Step")))
    if contract is None:
        raise ValueError(f"{function} has no step {event.get('Step')!r}")
    input_model, output_model = contract
    assert input_model is not None and output_model is not None, function
    step = c.read(event, input_model)
    return c.dump(output_model.model_validate(dict(steps[input_model](step))))


def run_model_workflow_step(event: Mapping[str, Any]) -> dict[str, Any]:
    return _run("ModelWorkflowFunctionArn", MODEL_WORKFLOW, event)


def run_packaging_workflow_step(event: Mapping[str, Any]) -> dict[str, Any]:
    return _run("PackagingWorkflowFunctionArn", PACKAGING_WORKFLOW, event)
