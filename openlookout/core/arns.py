"""ARNs in Lookout for Vision's format."""

from __future__ import annotations

import regex

from openlookout.core.errors import ValidationException
from openlookout.settings import settings

_MODEL_ARN = regex.compile(
    r"arn:aws[a-z-]*:lookoutvision:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"model/(?P<project>[a-zA-Z0-9][a-zA-Z0-9_\-]{0,254})/(?P<version>[1-9][0-9]{0,9})"
)


def project_arn(project_name: str) -> str:
    s = settings()
    return f"arn:aws:lookoutvision:{s.region}:{s.account_id}:project/{project_name}"


def model_arn(project_name: str, version: int | str) -> str:
    s = settings()
    return f"arn:aws:lookoutvision:{s.region}:{s.account_id}:model/{project_name}/{version}"


def parse_model_arn(arn: str) -> tuple[str, int]:
    """Returns (project, version) of a model ARN; anything else is a ValidationException."""
    match = _MODEL_ARN.fullmatch(arn)
    if match is None:
        raise ValidationException(
            f"The resource ARN {arn} is not a valid model ARN "
            "(arn:aws:lookoutvision:<region>:<account>:model/<project>/<version>)."
        )
    return match["project"], int(match["version"])
