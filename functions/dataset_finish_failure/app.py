"""Dataset state machine step: ends a failed operation: UPDATE_FAILED_ROLLBACK_COMPLETE for updates."""

from typing import Any

from openlookout.workflows.dataset_import import finish_failure, logger


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return finish_failure(event)
