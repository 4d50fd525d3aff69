"""The small steps of the training and hosting state machines (the training itself is TrainModel)."""

from openlookout.workflows import hosting, training
from openlookout.workflows.steps import step_handler

lambda_handler = step_handler("ModelWorkflowFunction", training.STEPS, hosting.STEPS, log_event=True)
