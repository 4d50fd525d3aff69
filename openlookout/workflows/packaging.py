"""Steps of the packaging state machine (statemachines/packaging.asl.json).

Package builds the component (openlookout/edge/component.py) from the model's artifact, writes
the zip and the recipe to the job's S3OutputLocation and registers the component: in AWS with
greengrassv2:CreateComponentVersion, under `openlookout serve` (no Greengrass there) in a local
registry in the artifacts bucket, with an ARN whose region is `local`.
"""

from __future__ import annotations

import json
import tempfile
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
from openlookout.workflows.caught import caught_error

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


def _register_locally(component: str, version: str, recipe: str) -> str:
    key = f"{LOCAL_REGISTRY}/{component}/{version}/recipe.yaml"
    bucket = settings().artifacts_bucket
    try:
        s3.read_head(bucket, key, length=1)
        exists = True
    except s3.ObjectUnavailable as unavailable:
        exists = not unavailable.missing
    if exists:
        raise PackagingError(f"The component {component} version {version} already exists.")
    s3.put_text(bucket, key, recipe)
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


def package(project_name: str, job_name: str) -> dict[str, Any]:
    job = get_job(project_name, job_name)
    model = get_model(project_name, int(job.model_version))
    greengrass = job.configuration["Greengrass"]
    component = greengrass["ComponentName"]
    version = greengrass.get("ComponentVersion") or f"{int(job.model_version)}.0.0"
    location = greengrass["S3OutputLocation"]
    prefix = location.get("Prefix") or ""
    zip_key = _output_key(prefix, artifact_name(component, version))
    metadata = {"ComponentName": component, "ComponentVersion": version, "ModelArn": model.model_arn}
    with tempfile.TemporaryDirectory(prefix="openlookout-package-") as work:
        directory = Path(work)
        for name in MODEL_FILES:
            fetch_file(settings().artifacts_bucket, f"{model.artifact_prefix or ''}{name}", directory / name)
        archive = build_zip(directory, metadata)
    description = greengrass.get("ComponentDescription") or f"Lookout for Vision model {model.model_arn}"
    recipe = build_recipe(
        component, version, description, Target.of(greengrass), f"s3://{location['Bucket']}/{zip_key}"
    )
    text = recipe_yaml(recipe)
    s3.put_text(location["Bucket"], zip_key, archive)
    s3.put_text(location["Bucket"], _output_key(prefix, f"{component}-{version}.recipe.yaml"), text)
    tags = {tag["Key"]: tag["Value"] for tag in greengrass.get("Tags") or ()}
    arn = _register_locally(component, version, text) if is_local() else _register_in_greengrass(text, tags)
    output = {"ComponentVersionArn": arn, "ComponentName": component, "ComponentVersion": version}
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
