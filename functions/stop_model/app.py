from openlookout.api.handler import api_operation
from openlookout.services import models


@api_operation("StopModel")
def lambda_handler(request: dict) -> dict:
    return models.stop_model(request["ProjectName"], request["ModelVersion"])
