from openlookout.api.handler import api_operation
from openlookout.services import projects


@api_operation("DescribeProject")
def lambda_handler(request: dict) -> dict:
    return projects.describe_project(request["ProjectName"])
