from openlookout.api.handler import api_operation
from openlookout.services import projects


@api_operation("ListProjects")
def lambda_handler(request: dict) -> dict:
    return projects.list_projects(request.get("NextToken"), request.get("MaxResults"))
