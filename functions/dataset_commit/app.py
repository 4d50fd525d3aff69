"""Dataset state machine step: switches the dataset to its new generation, or reports a failure."""

from openlookout.workflows import dataset_import
from openlookout.workflows.steps import step_handler

lambda_handler = step_handler("DatasetCommitFunction", dataset_import.STEPS)
