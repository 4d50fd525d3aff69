"""What a state machine's Catch hands to a failure step: {"Error": ..., "Cause": ...}, parsed once.

A Lambda task's Cause is JSON ({"errorType", "errorMessage", ...}); other tasks' (and the recovery
step's) Cause is plain text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CaughtError:
    kind: str  # the error's type, e.g. "TrainingError" or "States.Timeout"
    message: str


def caught_error(error: Mapping[str, Any] | None, unknown: str = "Unknown") -> CaughtError:
    error = error or {}
    cause = str(error.get("Cause") or "")
    try:
        details = json.loads(cause)
        kind = details.get("errorType") or error.get("Error") or unknown
        return CaughtError(str(kind), str(details.get("errorMessage") or cause))
    except (ValueError, AttributeError):
        return CaughtError(str(error.get("Error") or unknown), cause)
