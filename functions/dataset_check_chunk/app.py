"""Dataset state machine step: checks one chunk's images in S3 and writes its entries (a Map iteration)."""

from typing import Any

from openlookout.workflows.dataset_import import check_chunk, logger


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return check_chunk(event)
