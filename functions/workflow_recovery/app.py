"""Runs when a dataset, training, hosting or packaging workflow ends FAILED, TIMED_OUT or ABORTED."""

from typing import Any

from openlookout.core.observability import lambda_entry
from openlookout.workflows import recovery


@lambda_entry(log_event=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return recovery.execution_ended(event)
