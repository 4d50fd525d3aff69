"""Every (status, event) pair of the model and dataset life cycles, written to a real table (moto).

Allowed: the item ends in the transition's status. Refused by the API: the ConflictException
the API answers with. Recorded by a workflow: written whatever the status (the workflow owns
the item), with a warning in the log when the status was not one the event expects.
"""

from __future__ import annotations

import pytest

from openlookout.core.errors import ConflictException
from openlookout.lifecycles import dataset as dataset_lifecycle
from openlookout.lifecycles import model as model_lifecycle
from openlookout.lifecycles.dataset import DatasetEvent, DatasetStatus, Operation
from openlookout.lifecycles.model import API_EVENTS, ModelEvent, ModelStatus
from openlookout.storage.tables import DatasetItem, ModelItem

ARN = "arn:aws:lookoutvision:us-east-1:123456789012:model/p/1"

# What the API answers today for each refused (event, status), by the message's ending.
MODEL_REFUSALS = {
    ModelEvent.START: "; only a TRAINED model can be started.",
    ModelEvent.STOP: "; only a HOSTED model can be stopped.",
    ModelEvent.DELETE: " and cannot be deleted.",
}
MODEL_ALLOWED = {
    ModelEvent.START: {ModelStatus.TRAINED, ModelStatus.HOSTING_FAILED},
    ModelEvent.STOP: {ModelStatus.HOSTED, ModelStatus.HOSTING_FAILED},
    ModelEvent.DELETE: {
        ModelStatus.TRAINED,
        ModelStatus.TRAINING_FAILED,
        ModelStatus.HOSTING_FAILED,
        ModelStatus.DELETING,
    },
}
MODEL_TARGETS = {
    ModelEvent.START: ModelStatus.STARTING_HOSTING,
    ModelEvent.STOP: ModelStatus.STOPPING_HOSTING,
    ModelEvent.DELETE: ModelStatus.DELETING,
    ModelEvent.TRAINING_SUCCEEDED: ModelStatus.TRAINED,
    ModelEvent.TRAINING_FAILED: ModelStatus.TRAINING_FAILED,
    ModelEvent.HOSTING_SUCCEEDED: ModelStatus.HOSTED,
    ModelEvent.HOSTING_FAILED: ModelStatus.HOSTING_FAILED,
    ModelEvent.STOPPED: ModelStatus.TRAINED,
    ModelEvent.STOP_NOT_STARTED: ModelStatus.HOSTED,
}
MODEL_EXPECTED_BY_WORKFLOW = {
    ModelEvent.TRAINING_SUCCEEDED: ModelStatus.TRAINING,
    ModelEvent.TRAINING_FAILED: ModelStatus.TRAINING,
    ModelEvent.HOSTING_SUCCEEDED: ModelStatus.STARTING_HOSTING,
    ModelEvent.HOSTING_FAILED: ModelStatus.STARTING_HOSTING,
    ModelEvent.STOPPED: ModelStatus.STOPPING_HOSTING,
    ModelEvent.STOP_NOT_STARTED: ModelStatus.STOPPING_HOSTING,
}


def model_in(status: ModelStatus) -> ModelItem:
    item = ModelItem("p", 1, model_arn=ARN, status=str(status), status_message="before")
    item.save(add_version_condition=False)  # replaces the previous pair's item
    return item


def stored_model() -> ModelItem:
    return ModelItem.get("p", 1, consistent_read=True)


def test_every_model_api_event_in_every_status(aws: None) -> None:
    for event in API_EVENTS:
        for status in ModelStatus:
            check_model_api_event(status, event)


def check_model_api_event(status: ModelStatus, event: ModelEvent) -> None:
    item = model_in(status)
    if (event, status) == (ModelEvent.START, ModelStatus.HOSTED):
        # StartModel on a running model is a repeat: it answers HOSTED and writes nothing.
        assert model_lifecycle.next_status(item, event) == ModelStatus.HOSTED
        return
    if status in MODEL_ALLOWED[event]:
        model_lifecycle.change(item, event)
        assert stored_model().status == MODEL_TARGETS[event]
        assert stored_model().status_message == model_lifecycle.MESSAGES[MODEL_TARGETS[event]]
        return
    with pytest.raises(ConflictException) as refused:
        model_lifecycle.change(item, event)
    assert str(refused.value).startswith(f"The model {ARN} is {status}")
    assert MODEL_REFUSALS[event] in str(refused.value)
    assert stored_model().status == status  # nothing written


def test_every_model_workflow_event_in_every_status(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    warnings: list[str] = []
    monkeypatch.setattr(model_lifecycle.logger, "warning", lambda message, **_: warnings.append(message))
    for event in set(ModelEvent) - API_EVENTS:
        for status in ModelStatus:
            warnings.clear()
            model_lifecycle.record(model_in(status), event, "recorded")
            assert (stored_model().status, stored_model().status_message) == (
                MODEL_TARGETS[event],
                "recorded",
            )
            unexpected = "unexpected status for a workflow event" in warnings
            assert unexpected == (status != MODEL_EXPECTED_BY_WORKFLOW[event]), (status, event)


def test_a_workflow_write_that_loses_a_race_is_retried_on_a_fresh_read(aws: None) -> None:
    stale = model_in(ModelStatus.TRAINING)
    racer = stored_model()
    racer.status_message = "Extracting features"
    racer.save()  # bumps the version: `stale` now loses its version check once
    model_lifecycle.record(stale, ModelEvent.TRAINING_SUCCEEDED)
    assert stored_model().status == ModelStatus.TRAINED


def test_an_api_write_that_loses_a_race_is_a_conflict(aws: None) -> None:
    stale = model_in(ModelStatus.TRAINED)
    stored_model().save()
    with pytest.raises(ConflictException, match="was changed by another request"):
        model_lifecycle.change(stale, ModelEvent.START)


# ------------------------------------------------------------------ datasets

DATASET_API_ALLOWED = {
    DatasetEvent.UPDATE: dataset_lifecycle.UPDATABLE,
    DatasetEvent.DELETE: set(DatasetStatus) - dataset_lifecycle.IN_PROGRESS,
    DatasetEvent.UPDATE_NOT_STARTED: {DatasetStatus.UPDATE_IN_PROGRESS},
}


def dataset_in(status: DatasetStatus, pending: str | None = None) -> DatasetItem:
    item = DatasetItem("p", "train", status=str(status), status_message="before", pending_generation=pending)
    item.save(add_version_condition=False)  # replaces the previous pair's item
    return item


def stored_dataset() -> DatasetItem | None:
    try:
        return DatasetItem.get("p", "train", consistent_read=True)
    except DatasetItem.DoesNotExist:
        return None


def test_every_dataset_api_event_in_every_status(aws: None) -> None:
    for event in dataset_lifecycle.API_EVENTS:
        for status in DatasetStatus:
            check_dataset_api_event(status, event)


def check_dataset_api_event(status: DatasetStatus, event: DatasetEvent) -> None:
    item = dataset_in(status, pending="g0" if status in dataset_lifecycle.IN_PROGRESS else None)
    pending = "g1" if event == DatasetEvent.UPDATE else None
    write = (
        (lambda: dataset_lifecycle.remove(item))
        if event == DatasetEvent.DELETE
        else (lambda: dataset_lifecycle.change(item, event, pending_generation=pending))
    )
    if status in DATASET_API_ALLOWED[event]:
        write()
        stored = stored_dataset()
        target = dataset_lifecycle.TRANSITIONS[event][status]
        assert (stored.status if stored else None) == target
        return
    with pytest.raises(ConflictException) as refused:
        write()
    wait = status in dataset_lifecycle.IN_PROGRESS or event != DatasetEvent.UPDATE
    ending = "wait until the current operation finishes." if wait else "delete it and create it again."
    assert str(refused.value) == f"The train dataset of project p is {status}; {ending}"


WORKFLOW_OUTCOMES = {
    (DatasetEvent.COMMITTED, Operation.CREATE): DatasetStatus.CREATE_COMPLETE,
    (DatasetEvent.COMMITTED, Operation.UPDATE): DatasetStatus.UPDATE_COMPLETE,
    (DatasetEvent.FAILED, Operation.CREATE): DatasetStatus.CREATE_FAILED,
    (DatasetEvent.FAILED, Operation.UPDATE): DatasetStatus.UPDATE_FAILED_ROLLBACK_IN_PROGRESS,
    (DatasetEvent.ROLLED_BACK, Operation.CREATE): DatasetStatus.CREATE_FAILED,
    (DatasetEvent.ROLLED_BACK, Operation.UPDATE): DatasetStatus.UPDATE_FAILED_ROLLBACK_COMPLETE,
}


def test_every_dataset_workflow_event_of_every_operation(aws: None) -> None:
    for event, operation in WORKFLOW_OUTCOMES:
        check_dataset_workflow_event(event, operation)


def check_dataset_workflow_event(event: DatasetEvent, operation: Operation) -> None:
    owned = {
        DatasetEvent.COMMITTED: dataset_lifecycle.IN_PROGRESS,
        DatasetEvent.FAILED: dataset_lifecycle.IN_PROGRESS,
        DatasetEvent.ROLLED_BACK: {
            DatasetStatus.CREATE_FAILED,
            DatasetStatus.UPDATE_FAILED_ROLLBACK_IN_PROGRESS,
        },
    }[event]
    start = next(s for s in DatasetStatus if s in owned and s.startswith(str(operation)))
    dataset_in(start, pending="g1")
    assert dataset_lifecycle.record("p", "train", "g1", event, operation, "why")
    stored = stored_dataset()
    assert stored is not None and stored.status == WORKFLOW_OUTCOMES[(event, operation)]
    assert stored.pending_generation == ("g1" if event == DatasetEvent.FAILED else None)


def test_a_workflow_step_of_an_operation_that_lost_the_dataset_changes_nothing(aws: None) -> None:
    dataset_in(DatasetStatus.UPDATE_IN_PROGRESS, pending="newer")
    for event in (DatasetEvent.COMMITTED, DatasetEvent.FAILED, DatasetEvent.ROLLED_BACK):
        assert not dataset_lifecycle.record("p", "train", "g1", event, Operation.UPDATE, "why")
    stored = stored_dataset()
    assert stored is not None
    assert (stored.status, stored.pending_generation) == (DatasetStatus.UPDATE_IN_PROGRESS, "newer")


def test_the_transition_table_names_every_status_it_moves_from() -> None:
    for event, moves in dataset_lifecycle.TRANSITIONS.items():
        assert set(moves) <= set(DatasetStatus), event
    for event, transition in model_lifecycle.TRANSITIONS.items():
        assert transition.target == MODEL_TARGETS[event]
