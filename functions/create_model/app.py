from openlookout.api.handler import api_operation
from openlookout.services import models


@api_operation("CreateModel")
def lambda_handler(request: dict) -> dict:
    return models.create_model(
        request["ProjectName"],
        request["OutputConfig"],
        description=request.get("Description"),
        kms_key_id=request.get("KmsKeyId"),
        tags=request.get("Tags", ()),
    )
