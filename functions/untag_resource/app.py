from openlookout.api.handler import api_operation
from openlookout.services import tags


@api_operation("UntagResource")
def lambda_handler(request: dict) -> dict:
    return tags.untag_resource(request["ResourceArn"], request["TagKeys"])
