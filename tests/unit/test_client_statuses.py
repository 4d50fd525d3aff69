"""The waiters of openlookout/client.py keep their own status sets (a user's script imports that
module alone, without the service's dependencies): they must agree with the service's lifecycles
and with the service model."""

from __future__ import annotations

from openlookout import client
from openlookout.api.service_model import service_model
from openlookout.lifecycles import dataset, model


def modelled(shape: str) -> set[str]:
    return set(service_model().shape_for(shape).enum)


def test_every_status_the_waiters_name_is_one_the_service_model_knows() -> None:
    datasets, models, failed = client.DATASET_TRANSITIONS, client.MODEL_TRANSITIONS, client.FAILED_STATUSES
    assert datasets <= modelled("DatasetStatus")
    assert models <= modelled("ModelStatus")
    assert failed <= modelled("DatasetStatus") | modelled("ModelStatus")


def test_the_waiters_wait_exactly_while_a_lifecycle_is_in_progress() -> None:
    # A dataset's rollback is in progress, but the waiter reports the failure at once.
    rollback = dataset.DatasetStatus.UPDATE_FAILED_ROLLBACK_IN_PROGRESS
    assert client.DATASET_TRANSITIONS & set(dataset.DatasetStatus) == dataset.IN_PROGRESS - {rollback}
    assert rollback in client.FAILED_STATUSES
    # A model is in progress while a workflow owns it, and while DeleteModel runs.
    waited_on = client.MODEL_TRANSITIONS
    assert waited_on == set(model.WORKFLOW_ENDED) | {model.ModelStatus.DELETING}
    assert {s for s in model.ModelStatus if s.endswith("_FAILED")} <= client.FAILED_STATUSES
