"""Dataset state machine step: reads and checks the manifest or the Changes, and stages them in chunks."""

from openlookout.workflows import dataset_import
from openlookout.workflows.steps import step_handler

lambda_handler = step_handler("DatasetPrepareFunction", dataset_import.STEPS)
