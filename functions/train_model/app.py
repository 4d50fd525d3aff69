"""The training task: a container-image Lambda function (and the same image as a GPU job)."""

from typing import Any

from aws_lambda_powertools import Logger

from openlookout.workflows import training

logger = Logger(service="openlookout")


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return training.train_step(event)
