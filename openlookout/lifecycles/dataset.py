"""A dataset's life cycle: every status, every transition, every message, and how they are written.

CreateDataset -> CREATE_IN_PROGRESS -> CREATE_COMPLETE | CREATE_FAILED          (or CREATE_COMPLETE at once)
UpdateDatasetEntries: complete -> UPDATE_IN_PROGRESS -> UPDATE_COMPLETE
                                  | UPDATE_FAILED_ROLLBACK_IN_PROGRESS -> UPDATE_FAILED_ROLLBACK_COMPLETE

The API's writes are version-checked: a lost race is a ConflictException. A workflow step writes
only while its operation's generation is still the dataset's pending one, so a step of an
operation that lost the dataset (deleted, or replaced) changes nothing and says so in the log.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pynamodb.exceptions import DeleteError, UpdateError

from openlookout.core.errors import ConflictException, ResourceType
from openlookout.core.observability import logger
from openlookout.storage.conditions import lost_condition
from openlookout.storage.tables import DatasetItem, utcnow


class DatasetStatus(StrEnum):
    CREATE_IN_PROGRESS = "CREATE_IN_PROGRESS"
    CREATE_COMPLETE = "CREATE_COMPLETE"
    CREATE_FAILED = "CREATE_FAILED"
    UPDATE_IN_PROGRESS = "UPDATE_IN_PROGRESS"
    UPDATE_COMPLETE = "UPDATE_COMPLETE"
    UPDATE_FAILED_ROLLBACK_IN_PROGRESS = "UPDATE_FAILED_ROLLBACK_IN_PROGRESS"
    UPDATE_FAILED_ROLLBACK_COMPLETE = "UPDATE_FAILED_ROLLBACK_COMPLETE"


IN_PROGRESS = frozenset(
    {
        DatasetStatus.CREATE_IN_PROGRESS,
        DatasetStatus.UPDATE_IN_PROGRESS,
        DatasetStatus.UPDATE_FAILED_ROLLBACK_IN_PROGRESS,
    }
)
UPDATABLE = frozenset(
    {
        DatasetStatus.CREATE_COMPLETE,
        DatasetStatus.UPDATE_COMPLETE,
        DatasetStatus.UPDATE_FAILED_ROLLBACK_COMPLETE,
    }
)

MESSAGES = {
    DatasetStatus.CREATE_IN_PROGRESS: "The dataset is creating.",
    DatasetStatus.CREATE_COMPLETE: "The dataset was created successfully.",
    DatasetStatus.UPDATE_IN_PROGRESS: "The dataset is updating.",
    DatasetStatus.UPDATE_COMPLETE: "The dataset was updated successfully.",
}
UPDATE_NOT_STARTED_MESSAGE = "The update could not be started; the dataset is unchanged."


class Operation(StrEnum):
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


class DatasetEvent(StrEnum):
    UPDATE = "UPDATE"  # UpdateDatasetEntries
    UPDATE_NOT_STARTED = "UPDATE_NOT_STARTED"  # its workflow could not be started
    DELETE = "DELETE"  # DeleteDataset
    COMMITTED = "COMMITTED"  # the workflow's Commit
    FAILED = "FAILED"  # the workflow's MarkFailed
    ROLLED_BACK = "ROLLED_BACK"  # the workflow's FinishFailure, once the new generation is purged


API_EVENTS = frozenset({DatasetEvent.UPDATE, DatasetEvent.UPDATE_NOT_STARTED, DatasetEvent.DELETE})

# event -> {status it moves from: status it moves to}; None: the dataset is gone.
TRANSITIONS: dict[DatasetEvent, dict[DatasetStatus, DatasetStatus | None]] = {
    DatasetEvent.UPDATE: {status: DatasetStatus.UPDATE_IN_PROGRESS for status in UPDATABLE},
    DatasetEvent.UPDATE_NOT_STARTED: {
        DatasetStatus.UPDATE_IN_PROGRESS: DatasetStatus.UPDATE_FAILED_ROLLBACK_COMPLETE
    },
    DatasetEvent.DELETE: {status: None for status in set(DatasetStatus) - IN_PROGRESS},
    DatasetEvent.COMMITTED: {
        DatasetStatus.CREATE_IN_PROGRESS: DatasetStatus.CREATE_COMPLETE,
        DatasetStatus.UPDATE_IN_PROGRESS: DatasetStatus.UPDATE_COMPLETE,
    },
    DatasetEvent.FAILED: {
        DatasetStatus.CREATE_IN_PROGRESS: DatasetStatus.CREATE_FAILED,
        DatasetStatus.UPDATE_IN_PROGRESS: DatasetStatus.UPDATE_FAILED_ROLLBACK_IN_PROGRESS,
    },
    DatasetEvent.ROLLED_BACK: {
        DatasetStatus.CREATE_FAILED: DatasetStatus.CREATE_FAILED,  # a failed create stays failed
        DatasetStatus.UPDATE_FAILED_ROLLBACK_IN_PROGRESS: DatasetStatus.UPDATE_FAILED_ROLLBACK_COMPLETE,
    },
}

# The status a workflow step finds while its operation still owns the dataset.
_OWNED_STATUS = {
    (DatasetEvent.COMMITTED, Operation.CREATE): DatasetStatus.CREATE_IN_PROGRESS,
    (DatasetEvent.COMMITTED, Operation.UPDATE): DatasetStatus.UPDATE_IN_PROGRESS,
    (DatasetEvent.FAILED, Operation.CREATE): DatasetStatus.CREATE_IN_PROGRESS,
    (DatasetEvent.FAILED, Operation.UPDATE): DatasetStatus.UPDATE_IN_PROGRESS,
    (DatasetEvent.ROLLED_BACK, Operation.CREATE): DatasetStatus.CREATE_FAILED,
    (DatasetEvent.ROLLED_BACK, Operation.UPDATE): DatasetStatus.UPDATE_FAILED_ROLLBACK_IN_PROGRESS,
}


def dataset_id(project_name: str, dataset_type: str) -> str:
    return f"{project_name}/{dataset_type}"


def busy(item: DatasetItem) -> ConflictException:
    return ConflictException(
        f"The {item.dataset_type} dataset of project {item.project_name} is {item.status}; "
        "wait until the current operation finishes.",
        dataset_id(item.project_name, item.dataset_type),
        ResourceType.DATASET,
    )


def next_status(item: DatasetItem, event: DatasetEvent) -> DatasetStatus | None:
    """The status `event` moves the dataset to (None: deleted); ConflictException when the API
    refuses it in the dataset's status."""
    transitions = TRANSITIONS[event]
    status = DatasetStatus(item.status)
    if status in transitions:
        return transitions[status]
    if status in IN_PROGRESS or event != DatasetEvent.UPDATE:
        raise busy(item)
    raise ConflictException(
        f"The {item.dataset_type} dataset of project {item.project_name} is {item.status}; "
        "delete it and create it again.",
        dataset_id(item.project_name, item.dataset_type),
        ResourceType.DATASET,
    )


def _fresh(item: DatasetItem) -> DatasetItem:
    return DatasetItem.get(item.project_name, item.dataset_type, consistent_read=True)


def change(
    item: DatasetItem, event: DatasetEvent, message: str | None = None, pending_generation: str | None = None
) -> None:
    """The API's status change (UPDATE sets the new pending generation, UPDATE_NOT_STARTED clears it),
    version-checked: a concurrent change makes it a ConflictException."""
    target = next_status(item, event)
    assert target is not None, "DELETE goes through remove()"
    actions: list[Any] = [
        DatasetItem.status.set(str(target)),
        DatasetItem.status_message.set(message if message is not None else MESSAGES.get(target, "")),
        DatasetItem.pending_generation.set(pending_generation)
        if pending_generation
        else DatasetItem.pending_generation.remove(),
    ]
    if event == DatasetEvent.UPDATE:
        actions.append(DatasetItem.updated_at.set(utcnow()))
    try:
        item.update(actions=actions)
    except UpdateError as error:
        if lost_condition(error):
            raise busy(_fresh(item)) from None
        raise


def remove(item: DatasetItem) -> None:
    """DeleteDataset's write: refused while an operation runs, or when one started since `item` was read."""
    next_status(item, DatasetEvent.DELETE)
    try:
        item.delete()  # VersionAttribute: fails if an operation started since we read it
    except DeleteError as error:
        if lost_condition(error):
            raise busy(_fresh(item)) from None
        raise


def record(
    project_name: str,
    dataset_type: str,
    generation: str,
    event: DatasetEvent,
    operation: Operation,
    message: str | None = None,
    actions: tuple[Any, ...] = (),
) -> bool:
    """A workflow step's outcome for `generation`; False (and a log line) when that generation no
    longer owns the dataset. Every event but FAILED also ends the pending generation."""
    source = _OWNED_STATUS.get((event, operation))
    if source is None:  # a DELETE operation's workflow: its dataset is gone already
        logger.info("no status to record", extra={"generation": generation, "event": str(event)})
        return False
    target = TRANSITIONS[event][source]
    writes: list[Any] = [DatasetItem.updated_at.set(utcnow()), *actions]
    if target is not None and target != source:
        text = message if message is not None else MESSAGES.get(target, "")
        writes += [DatasetItem.status.set(str(target)), DatasetItem.status_message.set(text)]
    if event != DatasetEvent.FAILED:
        writes.append(DatasetItem.pending_generation.remove())
    try:
        DatasetItem(project_name, dataset_type).update(
            actions=writes,
            condition=DatasetItem.pending_generation == generation,
            add_version_condition=False,
        )
    except UpdateError as error:
        if not lost_condition(error):
            raise
        logger.warning("dataset moved on", extra={"generation": generation, "event": str(event)})
        return False
    return True
