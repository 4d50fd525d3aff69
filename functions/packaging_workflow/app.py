"""The steps of the packaging state machine (statemachines/packaging.asl.json)."""

from openlookout.workflows.steps import step_handler

lambda_handler = step_handler("PackagingWorkflowFunction", log_event=True)
