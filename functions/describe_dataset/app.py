from openlookout.api.handler import api_operation
from openlookout.services import datasets


@api_operation("DescribeDataset")
def lambda_handler(request: dict) -> dict:
    return datasets.describe_dataset(request["ProjectName"], request["DatasetType"])
