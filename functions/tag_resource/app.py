from openlookout.api.handler import api_operation
from openlookout.services import tags


@api_operation("TagResource")
def lambda_handler(request: dict) -> dict:
    return tags.tag_resource(request["ResourceArn"], request["Tags"])
