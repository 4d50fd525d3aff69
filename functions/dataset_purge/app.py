"""Dataset state machine step: deletes a generation's entries and staging objects, in slices."""

from openlookout.workflows import dataset_import
from openlookout.workflows.steps import step_handler

lambda_handler = step_handler("DatasetPurgeFunction", dataset_import.STEPS)
