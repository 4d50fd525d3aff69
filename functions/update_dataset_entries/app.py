from openlookout.api.handler import api_operation
from openlookout.services import datasets


@api_operation("UpdateDatasetEntries")
def lambda_handler(request: dict) -> dict:
    return datasets.update_dataset_entries(request["ProjectName"], request["DatasetType"], request["Changes"])
