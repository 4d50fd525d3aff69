from openlookout.api.handler import api_operation
from openlookout.services import projects


@api_operation("DeleteProject")
def lambda_handler(request: dict) -> dict:
    return projects.delete_project(request["ProjectName"])
