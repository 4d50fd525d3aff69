"""Dataset state machine step: switches the dataset to its new generation, or reports a failure."""

from openlookout.workflows.steps import step_handler

lambda_handler = step_handler("DatasetCommitFunction")
