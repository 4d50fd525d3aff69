"""Dataset state machine step: switches the dataset to its new generation, or reports a failure."""

from typing import Any

from openlookout.workflows.dataset_import import commit, logger


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return commit(event)
