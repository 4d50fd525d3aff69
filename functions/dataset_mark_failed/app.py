"""Dataset state machine step: sets CREATE_FAILED or UPDATE_FAILED_ROLLBACK_IN_PROGRESS with the reason."""

from openlookout.workflows import dataset_import
from openlookout.workflows.steps import step_handler

lambda_handler = step_handler("DatasetMarkFailedFunction", dataset_import.STEPS)
