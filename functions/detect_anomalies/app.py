from typing import Any

from openlookout.api.handler import api_operation
from openlookout.services import inference
from openlookout.workflows import hosting
from openlookout.workflows.steps import run_step


@api_operation("DetectAnomalies")
def api_handler(request: dict) -> dict:
    return inference.detect_anomalies(
        request["ProjectName"], request["ModelVersion"], request["ContentType"], request["Body"]
    )


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # The hosting state machine invokes this same function to load and check the model (a step).
    if "LoadModel" in event:
        return run_step(hosting.STEPS, "DetectAnomaliesFunction", event, context)
    return api_handler(event, context)
