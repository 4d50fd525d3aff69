from openlookout.api.handler import api_operation
from openlookout.services import tags


@api_operation("ListTagsForResource")
def lambda_handler(request: dict) -> dict:
    return tags.list_tags_for_resource(request["ResourceArn"])
