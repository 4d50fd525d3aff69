from openlookout.api.handler import api_operation
from openlookout.services import models


@api_operation("DescribeModel")
def lambda_handler(request: dict) -> dict:
    return models.describe_model(request["ProjectName"], request["ModelVersion"])
