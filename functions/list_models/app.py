from openlookout.api.handler import api_operation
from openlookout.services import models


@api_operation("ListModels")
def lambda_handler(request: dict) -> dict:
    return models.list_models(request["ProjectName"], request.get("NextToken"), request.get("MaxResults"))
