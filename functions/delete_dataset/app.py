from openlookout.api.handler import api_operation
from openlookout.services import datasets


@api_operation("DeleteDataset")
def lambda_handler(request: dict) -> dict:
    return datasets.delete_dataset(request["ProjectName"], request["DatasetType"])
