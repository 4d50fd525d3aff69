"""Dataset state machine step: sets CREATE_FAILED or UPDATE_FAILED_ROLLBACK_IN_PROGRESS with the reason."""

from typing import Any

from openlookout.workflows.dataset_import import logger, mark_failed


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return mark_failed(event)
