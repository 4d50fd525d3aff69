"""Dataset state machine step: deletes a generation's entries and staging objects, in slices."""

from typing import Any

from openlookout.workflows.dataset_import import logger, purge, seconds_left


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return purge(event, seconds_left(context))
