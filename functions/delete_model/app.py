from openlookout.api.handler import api_operation
from openlookout.services import models


@api_operation("DeleteModel")
def lambda_handler(request: dict) -> dict:
    return models.delete_model(request["ProjectName"], request["ModelVersion"])
