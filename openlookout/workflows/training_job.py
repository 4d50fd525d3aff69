"""`python -m openlookout.workflows.training_job`: the training container's job mode (SageMaker).

SageMaker passes hyperparameters in /opt/ml/input/config/hyperparameters.json; the state
machine sets `job-spec` to s3://bucket/key of the job spec that Prepare wrote.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from openlookout.settings import job_settings
from openlookout.workflows.training import run_job

HYPERPARAMETERS = Path("/opt/ml/input/config/hyperparameters.json")


def main() -> int:
    location = job_settings().job_spec
    if not location and HYPERPARAMETERS.exists():
        location = json.loads(HYPERPARAMETERS.read_text()).get("job-spec")
    if not location or not location.startswith("s3://"):
        print("no job spec: set OPENLOOKOUT_JOB_SPEC or the job-spec hyperparameter", file=sys.stderr)
        return 2
    bucket, key = location[5:].split("/", 1)
    try:
        run_job(bucket, key)
    except Exception as error:  # SageMaker reads the failure reason from this file
        Path("/opt/ml/output").mkdir(parents=True, exist_ok=True)
        Path("/opt/ml/output/failure").write_text(f"{type(error).__name__}: {error}")
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
