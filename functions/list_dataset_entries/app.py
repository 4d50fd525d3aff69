from openlookout.api.handler import api_operation
from openlookout.services import datasets


@api_operation("ListDatasetEntries")
def lambda_handler(request: dict) -> dict:
    return datasets.list_dataset_entries(
        request["ProjectName"],
        request["DatasetType"],
        labeled=request.get("Labeled"),
        anomaly_class=request.get("AnomalyClass"),
        created_before=request.get("BeforeCreationDate"),
        created_after=request.get("AfterCreationDate"),
        source_ref_contains=request.get("SourceRefContains"),
        next_token=request.get("NextToken"),
        max_results=request.get("MaxResults"),
    )
