"""Process-wide settings, read from the environment that template.yaml (or `openlookout serve`) sets."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class Settings:
    region: str
    account_id: str
    projects_table: str
    datasets_table: str
    dataset_entries_table: str
    models_table: str
    model_packaging_jobs_table: str
    idempotency_table: str
    token_secret: str
    artifacts_bucket: str

    @staticmethod
    def from_environment() -> Settings:
        env = os.environ
        return Settings(
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            account_id=env.get("ACCOUNT_ID", "000000000000"),
            projects_table=env.get("PROJECTS_TABLE", "openlookout-projects"),
            datasets_table=env.get("DATASETS_TABLE", "openlookout-datasets"),
            dataset_entries_table=env.get("DATASET_ENTRIES_TABLE", "openlookout-dataset-entries"),
            models_table=env.get("MODELS_TABLE", "openlookout-models"),
            model_packaging_jobs_table=env.get("MODEL_PACKAGING_JOBS_TABLE", "openlookout-packaging-jobs"),
            idempotency_table=env.get("IDEMPOTENCY_TABLE", "openlookout-idempotency"),
            token_secret=env.get("PAGINATION_TOKEN_SECRET", ""),
            artifacts_bucket=env.get("ARTIFACTS_BUCKET", "openlookout-artifacts"),
        )


@cache
def settings() -> Settings:
    return Settings.from_environment()
