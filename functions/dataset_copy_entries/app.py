"""Dataset state machine step: copies the current entries into an update's new generation, in slices."""

from typing import Any

from openlookout.workflows.dataset_import import copy_entries, logger, seconds_left


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return copy_entries(event, seconds_left(context))
