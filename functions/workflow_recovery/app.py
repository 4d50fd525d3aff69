"""Runs when a dataset, training, hosting or packaging workflow ends FAILED, TIMED_OUT or ABORTED."""

from typing import Any

from aws_lambda_powertools import Logger

from openlookout.workflows import recovery

logger = Logger(service="openlookout")


@logger.inject_lambda_context(log_event=True, clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return recovery.execution_ended(event)
