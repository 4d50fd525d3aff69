from openlookout.api.handler import api_operation
from openlookout.services import packaging


@api_operation("ListModelPackagingJobs")
def lambda_handler(request: dict) -> dict:
    return packaging.list_model_packaging_jobs(
        request["ProjectName"], request.get("NextToken"), request.get("MaxResults")
    )
