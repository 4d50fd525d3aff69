from openlookout.api.handler import api_operation
from openlookout.services import packaging


@api_operation("DescribeModelPackagingJob")
def lambda_handler(request: dict) -> dict:
    return packaging.describe_model_packaging_job(request["ProjectName"], request["JobName"])
