"""Steps of the packaging state machine (statemachines/packaging.asl.json).

Package builds the component (openlookout/edge/component.py) from the model's artifact, writes
the zip and the recipe to the job's S3OutputLocation and registers the component: in AWS with
greengrassv2:CreateComponentVersion, under `openlookout serve` (no Greengrass there) in a local
registry in the artifacts bucket, with an ARN whose region is `local`.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from openlookout.edge.component import (
    MODEL_FILES,
    Target,
    artifact_name,
    build_recipe,
    build_zip,
    recipe_yaml,
)
from openlookout.lifecycles.packaging_job import JobStatus, record
from openlookout.services.models import get_model
from openlookout.services.packaging import get_job
from openlookout.settings import settings
from openlookout.storage import s3
from openlookout.storage.artifacts import fetch_file
from openlookout.workflows import contracts as c
from openlookout.workflows.caught import caught_error
from openlookout.workflows.steps import Step, Steps, step_error

LOCAL_REGISTRY = "greengrass-local/components"  # in the artifacts bucket, only under `openlookout serve`


class PackagingError(Exception):
    """A problem the user can fix; its message becomes the job's StatusMessage."""


def is_local() -> bool:
    return settings().local


def local_component_arn(component: str, version: str) -> str:
    return f"arn:aws:greengrass:local:{settings().account_id}:components:{component}:versions:{version}"


def mark_running(project_name: str, job_name: str) -> dict[str, Any]:
    job = get_job(project_name, job_name)
    record(job, JobStatus.RUNNING)
    return {"Status": job.status}


def _output_key(prefix: str, name: str) -> str:
    return f"{prefix}{name}" if not prefix or prefix.endswith("/") else f"{prefix}/{name}"


def _local_recipe_key(component: str, version: str) -> str:
    return f"{LOCAL_REGISTRY}/{component}/{version}/recipe.yaml"


def _clash(component: str, version: str) -> PackagingError:
    return PackagingError(f"The component {component} version {version} already exists.")


def _exists_locally(component: str, version: str) -> bool:
    try:
        s3.read_head(settings().artifacts_bucket, _local_recipe_key(component, version), length=1)
        return True
    except s3.ObjectUnavailable as unavailable:
        return not unavailable.missing


def _exists_in_greengrass(component: str, version: str) -> bool:
    client = boto3.client("greengrassv2")
    region = client.meta.region_name
    arn = f"arn:aws:greengrass:{region}:{settings().account_id}:components:{component}:versions:{version}"
    try:
        client.describe_component(arn=arn)
        return True
    except client.exceptions.ResourceNotFoundException:
        return False


def check_component_is_new(component: str, version: str) -> None:
    """Before anything is written: a FAILED job must leave a published component's files as they are."""
    exists = _exists_locally if is_local() else _exists_in_greengrass
    if exists(component, version):
        raise _clash(component, version)


def _register_locally(component: str, version: str, recipe: str) -> str:
    if _exists_locally(component, version):  # a job for the same version that finished meanwhile
        raise _clash(component, version)
    s3.put_text(settings().artifacts_bucket, _local_recipe_key(component, version), recipe)
    return local_component_arn(component, version)


def _register_in_greengrass(recipe: str, tags: dict[str, str]) -> str:
    client = boto3.client("greengrassv2")
    arguments: dict[str, Any] = {"inlineRecipe": recipe.encode("utf-8")}
    if tags:
        arguments["tags"] = tags
    try:
        return str(client.create_component_version(**arguments)["arn"])
    except client.exceptions.ConflictException as error:
        raise PackagingError(f"Greengrass refused the component: {error}") from None


@dataclass(frozen=True)
class Component:
    """What a job publishes: the component's name and version, and where its files go."""

    name: str
    version: str
    bucket: str
    prefix: str

    @staticmethod
    def of(greengrass: dict[str, Any], model_version: int) -> Component:
        location = greengrass["S3OutputLocation"]
        version = greengrass.get("ComponentVersion") or f"{model_version}.0.0"  # L4V's default
        return Component(
            greengrass["ComponentName"], version, location["Bucket"], location.get("Prefix") or ""
        )

    @property
    def zip_key(self) -> str:
        return _output_key(self.prefix, artifact_name(self.name, self.version))

    @property
    def recipe_key(self) -> str:
        return _output_key(self.prefix, f"{self.name}-{self.version}.recipe.yaml")


def _build(component: Component, model: Any, greengrass: dict[str, Any]) -> tuple[bytes, str]:
    """The zip and the recipe, in memory: nothing is written before every check has passed."""
    metadata = {"ComponentName": component.name, "ComponentVersion": component.version}
    metadata["ModelArn"] = model.model_arn
    with tempfile.TemporaryDirectory(prefix="openlookout-package-") as work:
        directory = Path(work)
        for name in MODEL_FILES:
            fetch_file(settings().artifacts_bucket, f"{model.artifact_prefix or ''}{name}", directory / name)
        archive = build_zip(directory, metadata)
    description = greengrass.get("ComponentDescription") or f"Lookout for Vision model {model.model_arn}"
    zip_uri = f"s3://{component.bucket}/{component.zip_key}"
    recipe = build_recipe(component.name, component.version, description, Target.of(greengrass), zip_uri)
    return archive, recipe_yaml(recipe)


def package(project_name: str, job_name: str) -> dict[str, Any]:
    job = get_job(project_name, job_name)
    model = get_model(project_name, int(job.model_version))
    greengrass = job.configuration["Greengrass"]
    component = Component.of(greengrass, int(job.model_version))
    check_component_is_new(component.name, component.version)
    archive, text = _build(component, model, greengrass)
    s3.put_text(component.bucket, component.zip_key, archive)
    s3.put_text(component.bucket, component.recipe_key, text)
    tags = {tag["Key"]: tag["Value"] for tag in greengrass.get("Tags") or ()}
    if is_local():
        arn = _register_locally(component.name, component.version, text)
    else:
        arn = _register_in_greengrass(text, tags)
    output = {
        "ComponentVersionArn": arn,
        "ComponentName": component.name,
        "ComponentVersion": component.version,
    }
    record(job, JobStatus.SUCCEEDED, output=output)
    return {"Status": job.status, "Output": output}


def fail(project_name: str, job_name: str, error: dict[str, Any] | None) -> dict[str, Any]:
    job = get_job(project_name, job_name)
    caught = caught_error(error)
    if caught.kind == "PackagingError":
        message = f"Packaging failed: {caught.message}"
    else:
        message = f"Packaging failed ({caught.kind}): {caught.message}"
    record(job, JobStatus.FAILED, message[:1000])
    return {"Status": job.status, "Error": json.loads(json.dumps(error or {}))}


# This module's workflow steps (workflows/steps.py runs them).
STEPS: Steps = {
    ("PackagingWorkflowFunction", "MarkRunning"): Step(
        c.MarkRunningStep, c.StatusResult, lambda s: mark_running(s.ProjectName, s.JobName)
    ),
    ("PackagingWorkflowFunction", "Package"): Step(
        c.PackageStep, c.PackagedResult, lambda s: package(s.ProjectName, s.JobName)
    ),
    ("PackagingWorkflowFunction", "Fail"): Step(
        c.FailPackagingStep, c.PackagingFailedResult, lambda s: fail(s.ProjectName, s.JobName, step_error(s))
    ),
}
