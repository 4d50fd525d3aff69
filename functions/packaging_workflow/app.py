"""The steps of the packaging state machine (statemachines/packaging.asl.json)."""

from typing import Any

from aws_lambda_powertools import Logger

from openlookout.workflows import packaging

logger = Logger(service="openlookout")

STEPS = {
    "MarkRunning": lambda e: packaging.mark_running(e["ProjectName"], e["JobName"]),
    "Package": lambda e: packaging.package(e["ProjectName"], e["JobName"]),
    "Fail": lambda e: packaging.fail(e["ProjectName"], e["JobName"], e.get("Error")),
}


@logger.inject_lambda_context(log_event=True, clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return STEPS[event["Step"]](event)
