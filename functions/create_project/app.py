from openlookout.api.handler import api_operation
from openlookout.services import projects


@api_operation("CreateProject")
def lambda_handler(request: dict) -> dict:
    return projects.create_project(request["ProjectName"])
