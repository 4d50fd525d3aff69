from openlookout.api.handler import api_operation
from openlookout.services import datasets


@api_operation("CreateDataset")
def lambda_handler(request: dict) -> dict:
    source = request.get("DatasetSource")
    return datasets.create_dataset(request["ProjectName"], request["DatasetType"], source)
