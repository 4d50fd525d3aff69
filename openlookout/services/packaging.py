"""Model packaging jobs: a TRAINED or HOSTED model as a Greengrass v2 component for edge devices.

StartModelPackagingJob validates the configuration, records the job CREATED and starts the
packaging state machine (statemachines/packaging.asl.json), whose steps
(openlookout/workflows/packaging.py) move it to RUNNING and then SUCCEEDED or FAILED.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from openlookout.core.errors import (
    ConflictException,
    ResourceNotFoundException,
    ResourceType,
    ValidationException,
)
from openlookout.core.pagination import read_page
from openlookout.lifecycles.model import ModelStatus
from openlookout.lifecycles.packaging_job import MESSAGES, JobStatus, record
from openlookout.services.answers import (
    DescribeModelPackagingJobAnswer,
    ListModelPackagingJobsAnswer,
    StartModelPackagingJobAnswer,
    structure,
)
from openlookout.services.executions import StateMachine, execution_arn, execution_name, start_execution
from openlookout.services.models import get_model
from openlookout.services.projects import get_project
from openlookout.storage.conditions import refused_if_lost
from openlookout.storage.tables import ModelPackagingJobItem, partition_reader

if TYPE_CHECKING:
    from mypy_boto3_lookoutvision.type_defs import (
        ModelPackagingDescriptionTypeDef,
        ModelPackagingJobMetadataTypeDef,
    )

PACKAGEABLE = {ModelStatus.TRAINED, ModelStatus.HOSTED}
NVIDIA_OPTIONS = ("gpu-code", "trt-ver", "cuda-ver")
CPU_OPTIONS = {"mcpu", "mattr"}


# ------------------------------------------------------------------ validation


def _compiler_options(text: str) -> dict[str, Any]:
    try:
        options = json.loads(text)
    except ValueError:
        raise ValidationException(f"CompilerOptions is not a JSON object: {text}") from None
    if not isinstance(options, dict):
        raise ValidationException(f"CompilerOptions is not a JSON object: {text}")
    return options


def check_configuration(greengrass: Mapping[str, Any]) -> None:
    """L4V's rules that the service model cannot express (exactly one target, its compiler options)."""
    device, platform = greengrass.get("TargetDevice"), greengrass.get("TargetPlatform")
    if bool(device) == bool(platform):
        raise ValidationException("Specify exactly one of TargetDevice and TargetPlatform.")
    text = greengrass.get("CompilerOptions")
    if device:
        if text is not None:
            raise ValidationException("CompilerOptions is not allowed with TargetDevice.")
        return
    options = _compiler_options(text) if text is not None else {}
    if (platform or {}).get("Accelerator") == "NVIDIA":
        missing = [name for name in NVIDIA_OPTIONS if name not in options]
        if missing:
            raise ValidationException(
                "An NVIDIA TargetPlatform needs CompilerOptions with gpu-code, trt-ver and cuda-ver; "
                f"missing: {', '.join(missing)}."
            )
    elif set(options) - CPU_OPTIONS:
        unknown = ", ".join(sorted(set(options) - CPU_OPTIONS))
        raise ValidationException(f"CompilerOptions for a CPU target take only mcpu and mattr: {unknown}.")


# ------------------------------------------------------------------ lookups and views


def get_job(project_name: str, job_name: str) -> ModelPackagingJobItem:
    try:
        return ModelPackagingJobItem.get(project_name, job_name, consistent_read=True)
    except ModelPackagingJobItem.DoesNotExist:
        get_project(project_name)  # an unknown project is reported as such
        raise ResourceNotFoundException(
            f"The model packaging job {job_name} of project {project_name} does not exist.",
            job_name,
            ResourceType.MODEL_PACKAGE_JOB,
        ) from None


def _metadata(job: ModelPackagingJobItem) -> ModelPackagingJobMetadataTypeDef:
    return structure(
        {
            "JobName": job.job_name,
            "ProjectName": job.project_name,
            "ModelVersion": str(int(job.model_version)),
            "ModelPackagingJobDescription": job.description,
            "ModelPackagingMethod": job.method,
            "Status": job.status,
            "StatusMessage": job.status_message,
            "CreationTimestamp": job.created_at,
            "LastUpdatedTimestamp": job.updated_at,
        }
    )


def describe(job: ModelPackagingJobItem) -> ModelPackagingDescriptionTypeDef:
    described = {**_metadata(job), "ModelPackagingConfiguration": job.configuration}
    if job.output:
        described["ModelPackagingOutputDetails"] = {"Greengrass": job.output}
    return structure(described)


# ------------------------------------------------------------------ operations


def start_model_packaging_job(
    project_name: str,
    model_version: str,
    configuration: Mapping[str, Any],
    job_name: str | None = None,
    description: str | None = None,
) -> StartModelPackagingJobAnswer:
    check_configuration(configuration["Greengrass"])
    model = get_model(project_name, model_version)
    if model.status not in PACKAGEABLE:
        raise ConflictException(
            f"The model {model.model_arn} is {model.status}; only a TRAINED or HOSTED model can be packaged.",
            model.model_arn,
            ResourceType.MODEL,
        )
    name = job_name or str(uuid.uuid4())
    job = ModelPackagingJobItem(
        project_name,
        name,
        model_version=int(model.model_version),
        description=description,
        configuration=dict(configuration),
        status=str(JobStatus.CREATED),
        status_message=MESSAGES[JobStatus.CREATED],
    )
    execution = execution_name("package", name)
    job.execution_arn = execution_arn(StateMachine.PACKAGING, execution)
    duplicate = ConflictException(
        f"A model packaging job named {name} already exists in project {project_name}.",
        name,
        ResourceType.MODEL_PACKAGE_JOB,
    )
    with refused_if_lost(duplicate):
        job.save(condition=ModelPackagingJobItem.job_name.does_not_exist())
    try:
        payload = {"ProjectName": project_name, "JobName": name}
        start_execution(StateMachine.PACKAGING, execution, payload)
    except Exception as error:
        # No workflow will ever finish this job: never leave it CREATED.
        record(job, JobStatus.FAILED, f"The packaging workflow could not be started: {error}")
        raise
    return {"JobName": name}


def describe_model_packaging_job(project_name: str, job_name: str) -> DescribeModelPackagingJobAnswer:
    return {"ModelPackagingDescription": describe(get_job(project_name, job_name))}


def list_model_packaging_jobs(
    project_name: str, next_token: str | None = None, max_results: int | None = None
) -> ListModelPackagingJobsAnswer:
    get_project(project_name)

    query = partition_reader(ModelPackagingJobItem, project_name, consistent_read=True)
    scope = f"ListModelPackagingJobs/{project_name}"
    page, more = read_page(scope, next_token, max_results, query, lambda job: job.job_name)
    return {"ModelPackagingJobs": [_metadata(job) for job in page], **more}
