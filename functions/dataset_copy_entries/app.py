"""Dataset state machine step: copies the current entries into an update's new generation, in slices."""

from openlookout.workflows import dataset_import
from openlookout.workflows.steps import step_handler

lambda_handler = step_handler("DatasetCopyEntriesFunction", dataset_import.STEPS)
