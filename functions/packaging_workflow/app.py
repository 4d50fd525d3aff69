"""The steps of the packaging state machine (statemachines/packaging.asl.json)."""

from openlookout.workflows import packaging
from openlookout.workflows.steps import step_handler

lambda_handler = step_handler("PackagingWorkflowFunction", packaging.STEPS, log_event=True)
