"""A model version's life cycle: every status, every transition, every message, and how they are written.

TRAINING -> TRAINED | TRAINING_FAILED                    (training state machine)
TRAINED | HOSTING_FAILED -> STARTING_HOSTING -> HOSTED | HOSTING_FAILED   (StartModel, hosting workflow)
HOSTED | HOSTING_FAILED -> STOPPING_HOSTING -> TRAINED   (StopModel, hosting workflow)
any status but a busy one -> DELETING                    (DeleteModel)

The API refuses a transition from a status that does not allow it with a ConflictException; a
workflow step records its outcome whatever it finds (it owns the model while it runs), and logs a
status it did not expect.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pynamodb.exceptions import PutError

from openlookout.core.errors import ConflictException, ResourceType
from openlookout.core.observability import logger
from openlookout.lifecycles.common import retry_workflow_write
from openlookout.storage.conditions import lost_condition
from openlookout.storage.tables import ModelItem

MAX_MESSAGE = 1000  # StatusMessage stays short whatever an engine or a workflow reports


class ModelStatus(StrEnum):
    TRAINING = "TRAINING"
    TRAINED = "TRAINED"
    TRAINING_FAILED = "TRAINING_FAILED"
    STARTING_HOSTING = "STARTING_HOSTING"
    HOSTED = "HOSTED"
    HOSTING_FAILED = "HOSTING_FAILED"
    STOPPING_HOSTING = "STOPPING_HOSTING"
    SYSTEM_UPDATING = "SYSTEM_UPDATING"
    DELETING = "DELETING"


MESSAGES = {
    ModelStatus.TRAINING: "The model is being trained.",
    ModelStatus.TRAINED: "Training completed successfully.",
    ModelStatus.STARTING_HOSTING: "The model is starting.",
    ModelStatus.HOSTED: "The model is running.",
    ModelStatus.STOPPING_HOSTING: "The model is stopping.",
    ModelStatus.DELETING: "The model is being deleted.",
}


class ModelEvent(StrEnum):
    START = "START"  # StartModel
    STOP = "STOP"  # StopModel
    DELETE = "DELETE"  # DeleteModel
    TRAINING_SUCCEEDED = "TRAINING_SUCCEEDED"
    TRAINING_FAILED = "TRAINING_FAILED"  # also when the training workflow could not be started
    HOSTING_SUCCEEDED = "HOSTING_SUCCEEDED"
    HOSTING_FAILED = "HOSTING_FAILED"  # also when the hosting workflow could not be started
    STOPPED = "STOPPED"
    STOP_NOT_STARTED = "STOP_NOT_STARTED"  # the hosting workflow could not be started for a stop


API_EVENTS = frozenset({ModelEvent.START, ModelEvent.STOP, ModelEvent.DELETE})


@dataclass(frozen=True)
class Transition:
    sources: frozenset[ModelStatus]
    target: ModelStatus


BUSY_FOR_DELETE = frozenset(
    {
        ModelStatus.TRAINING,
        ModelStatus.HOSTED,
        ModelStatus.STARTING_HOSTING,
        ModelStatus.STOPPING_HOSTING,
        ModelStatus.SYSTEM_UPDATING,
    }
)

TRANSITIONS = {
    ModelEvent.START: Transition(
        frozenset({ModelStatus.TRAINED, ModelStatus.HOSTING_FAILED}), ModelStatus.STARTING_HOSTING
    ),
    ModelEvent.STOP: Transition(
        frozenset({ModelStatus.HOSTED, ModelStatus.HOSTING_FAILED}), ModelStatus.STOPPING_HOSTING
    ),
    ModelEvent.DELETE: Transition(frozenset(set(ModelStatus) - BUSY_FOR_DELETE), ModelStatus.DELETING),
    ModelEvent.TRAINING_SUCCEEDED: Transition(frozenset({ModelStatus.TRAINING}), ModelStatus.TRAINED),
    ModelEvent.TRAINING_FAILED: Transition(frozenset({ModelStatus.TRAINING}), ModelStatus.TRAINING_FAILED),
    ModelEvent.HOSTING_SUCCEEDED: Transition(frozenset({ModelStatus.STARTING_HOSTING}), ModelStatus.HOSTED),
    ModelEvent.HOSTING_FAILED: Transition(
        frozenset({ModelStatus.STARTING_HOSTING}), ModelStatus.HOSTING_FAILED
    ),
    ModelEvent.STOPPED: Transition(frozenset({ModelStatus.STOPPING_HOSTING}), ModelStatus.TRAINED),
    ModelEvent.STOP_NOT_STARTED: Transition(frozenset({ModelStatus.STOPPING_HOSTING}), ModelStatus.HOSTED),
}
# StartModel on a running model is a repeat, not a transition: it answers HOSTED and changes nothing.
UNCHANGED = {(ModelEvent.START, ModelStatus.HOSTED)}

# The event that ends each in-progress status when its workflow ended without running its own steps.
WORKFLOW_ENDED = {
    ModelStatus.TRAINING: ModelEvent.TRAINING_FAILED,
    ModelStatus.STARTING_HOSTING: ModelEvent.HOSTING_FAILED,
    # Stopping only changes the status, so an interrupted stop still means "stopped".
    ModelStatus.STOPPING_HOSTING: ModelEvent.STOPPED,
}


def _refusal(event: ModelEvent, arn: str, status: str) -> ConflictException:
    if event == ModelEvent.START:
        message = f"The model {arn} is {status}; only a TRAINED model can be started."
    elif event == ModelEvent.STOP:
        message = f"The model {arn} is {status}; only a HOSTED model can be stopped."
    else:
        advice = "Stop it with StopModel first." if "HOST" in status else "Wait until it has finished."
        message = f"The model {arn} is {status} and cannot be deleted. {advice}"
    return ConflictException(message, arn, ResourceType.MODEL)


def next_status(item: ModelItem, event: ModelEvent) -> ModelStatus:
    """The status an API event moves the model to (its own status for a repeat); ConflictException
    when the model's status does not allow the event."""
    status = ModelStatus(item.status)
    if (event, status) in UNCHANGED:
        return status
    transition = TRANSITIONS[event]
    if status not in transition.sources:
        raise _refusal(event, item.model_arn, item.status)
    return transition.target


# ------------------------------------------------------------------ messages


def training_failure_message(kind: str, detail: str) -> str:
    """A message a user can act on, from the error that ended training."""
    if kind in ("TrainingError", "ValidationException"):
        return f"Training failed: {detail}"
    if kind in ("States.Timeout", "Sandbox.Timedout") or "timed out" in detail.lower():
        return (
            "Training failed: the training task ran out of time. Use the GPU training option or fewer images."
        )
    return f"Training failed ({kind}): {detail}"[:MAX_MESSAGE]


def hosting_failure_message(detail: str) -> str:
    return f"The model could not be loaded for inference: {detail}"[:MAX_MESSAGE]


def workflow_ended_message(event: ModelEvent, reason: str) -> str | None:
    """The message for an in-progress status whose workflow ended `reason` (e.g. "ended ABORTED")."""
    if event == ModelEvent.TRAINING_FAILED:
        return f"Training failed: the workflow {reason}."
    if event == ModelEvent.HOSTING_FAILED:
        return f"Starting the model failed: the workflow {reason}."
    return None  # the target status's own message


# ------------------------------------------------------------------ writes


def _apply(item: ModelItem, target: ModelStatus, message: str | None, fields: dict[str, Any]) -> None:
    item.status = str(target)
    item.status_message = message if message is not None else MESSAGES.get(target)
    for name, value in fields.items():
        setattr(item, name, value)


def change(item: ModelItem, event: ModelEvent, message: str | None = None, **fields: Any) -> None:
    """The API's status change: an API event is refused unless the status allows it (the other
    events come from the API only to end a workflow it could not start); then a version-checked
    save, where a concurrent change makes it a ConflictException."""
    target = next_status(item, event) if event in API_EVENTS else TRANSITIONS[event].target
    _apply(item, target, message, fields)
    try:
        item.save()
    except PutError as error:
        if lost_condition(error):
            raise ConflictException(
                f"The model {item.model_arn} was changed by another request; retry.",
                item.model_arn,
                ResourceType.MODEL,
            ) from None
        raise


def record(item: ModelItem, event: ModelEvent, message: str | None = None, **fields: Any) -> None:
    """A workflow step's outcome: saved whatever the model's status, retried on a fresh read."""
    transition = TRANSITIONS[event]

    def write() -> None:
        if item.status not in transition.sources:
            logger.warning(
                "unexpected status for a workflow event",
                extra={"model": item.model_arn, "status": item.status, "event": str(event)},
            )
        _apply(item, transition.target, message, fields)
        item.save()

    retry_workflow_write(
        write, lambda: item.refresh(consistent_read=True), f"{transition.target} on {item.model_arn}"
    )


def record_progress(project_name: str, model_version: int, message: str) -> bool:
    """Sets StatusMessage if the model is still TRAINING; False when it is not (or the write lost)."""
    try:
        model = ModelItem.get(project_name, int(model_version), consistent_read=True)
        if model.status != str(ModelStatus.TRAINING):
            return False
        model.update(
            actions=[ModelItem.status_message.set(message[:MAX_MESSAGE])],
            condition=ModelItem.status == str(ModelStatus.TRAINING),
        )
    except Exception as error:  # progress is best effort: training goes on without it
        logger.info("progress not recorded", extra={"reason": str(error)})
        return False
    return True
