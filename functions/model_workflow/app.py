"""The small steps of the training and hosting state machines (the training itself is TrainModel)."""

from typing import Any

from aws_lambda_powertools import Logger

from openlookout.workflows import hosting, training

logger = Logger(service="openlookout")

STEPS = {
    "PrepareTraining": lambda e: training.prepare(e["ProjectName"], int(e["ModelVersion"])),
    "FinishTraining": lambda e: training.finish(e["ProjectName"], int(e["ModelVersion"]), e["Result"]),
    "FailTraining": lambda e: training.fail(e["ProjectName"], int(e["ModelVersion"]), e.get("Error")),
    "ReadJobResult": lambda e: training.read_job_result(e["JobSpec"]["Bucket"], e["JobSpec"]["Key"]),
    "MarkHosted": lambda e: hosting.mark_hosted(e["ProjectName"], int(e["ModelVersion"])),
    "MarkHostingFailed": lambda e: hosting.mark_hosting_failed(
        e["ProjectName"], int(e["ModelVersion"]), e.get("Error")
    ),
    "MarkStopped": lambda e: hosting.mark_stopped(e["ProjectName"], int(e["ModelVersion"])),
}


@logger.inject_lambda_context(log_event=True, clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return STEPS[event["Step"]](event)
