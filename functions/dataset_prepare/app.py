"""Dataset state machine step: reads and checks the manifest or the Changes, and stages them in chunks."""

from typing import Any

from openlookout.workflows.dataset_import import logger, prepare


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return prepare(event)
