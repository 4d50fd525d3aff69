"""A model packaging job's life cycle: CREATED -> RUNNING -> SUCCEEDED | FAILED.

Only the job's own workflow (and, when that workflow could not start or ended without its failure
step, the API and the recovery step) changes its status, so every write is a workflow write: a lost
version check is retried on a fresh read.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from openlookout.lifecycles.common import retry_workflow_write
from openlookout.storage.tables import ModelPackagingJobItem, utcnow


class JobStatus(StrEnum):
    CREATED = "CREATED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


MESSAGES = {
    JobStatus.CREATED: "The model packaging job was created.",
    JobStatus.RUNNING: "The model packaging job is running.",
    JobStatus.SUCCEEDED: "The model packaging job succeeded.",
}

# A job in these is owned by a running workflow (or by the recovery step once that workflow ended).
UNSETTLED = frozenset({JobStatus.CREATED, JobStatus.RUNNING})


def record(job: ModelPackagingJobItem, status: JobStatus, message: str | None = None, **fields: Any) -> None:
    """A status change by the job's one workflow; a lost version check is retried on a fresh read."""

    def write() -> None:
        job.status = str(status)
        job.status_message = message if message is not None else MESSAGES.get(status)
        job.updated_at = utcnow()
        for name, value in fields.items():
            setattr(job, name, value)
        job.save()

    retry_workflow_write(
        write, lambda: job.refresh(consistent_read=True), f"{status} on packaging job {job.job_name}"
    )
