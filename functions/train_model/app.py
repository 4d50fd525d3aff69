"""The training task: a container-image Lambda function (and the same image as a GPU job)."""

from openlookout.workflows import training
from openlookout.workflows.steps import step_handler

lambda_handler = step_handler("TrainModelFunction", training.STEPS)
