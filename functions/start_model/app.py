from openlookout.api.handler import api_operation
from openlookout.services import models


@api_operation("StartModel")
def lambda_handler(request: dict) -> dict:
    return models.start_model(
        request["ProjectName"],
        request["ModelVersion"],
        request["MinInferenceUnits"],
        request.get("MaxInferenceUnits"),
    )
