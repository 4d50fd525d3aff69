from openlookout.api.handler import api_operation
from openlookout.services import packaging


@api_operation("StartModelPackagingJob")
def lambda_handler(request: dict) -> dict:
    return packaging.start_model_packaging_job(
        request["ProjectName"],
        request["ModelVersion"],
        request["Configuration"],
        job_name=request.get("JobName"),
        description=request.get("Description"),
    )
