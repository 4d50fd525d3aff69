"""The steps of the packaging state machine (statemachines/packaging.asl.json)."""

from typing import Any

from aws_lambda_powertools import Logger

from openlookout.workflows import steps

logger = Logger(service="openlookout")


@logger.inject_lambda_context(log_event=True, clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return steps.run_packaging_workflow_step(event)
