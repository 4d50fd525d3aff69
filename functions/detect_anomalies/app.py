from typing import Any

from openlookout.api.handler import api_operation
from openlookout.services import inference


@api_operation("DetectAnomalies")
def api_handler(request: dict) -> dict:
    return inference.detect_anomalies(
        request["ProjectName"], request["ModelVersion"], request["ContentType"], request["Body"]
    )


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # The hosting state machine invokes this same function to load and check the model,
    # so the execution environment that serves DetectAnomalies is the one that is warmed.
    if "LoadModel" in event:
        target = event["LoadModel"]
        return inference.load_and_check(target["ProjectName"], int(target["ModelVersion"]))
    return api_handler(event, context)
