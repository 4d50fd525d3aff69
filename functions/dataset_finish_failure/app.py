"""Dataset state machine step: ends a failed operation: UPDATE_FAILED_ROLLBACK_COMPLETE for updates."""

from openlookout.workflows import dataset_import
from openlookout.workflows.steps import step_handler

lambda_handler = step_handler("DatasetFinishFailureFunction", dataset_import.STEPS)
