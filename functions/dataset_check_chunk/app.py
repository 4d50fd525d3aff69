"""Dataset state machine step: checks one chunk's images in S3 and writes its entries (a Map iteration)."""

from openlookout.workflows import dataset_import
from openlookout.workflows.steps import step_handler

lambda_handler = step_handler("DatasetCheckChunkFunction", dataset_import.STEPS)
