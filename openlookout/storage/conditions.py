"""Recognising DynamoDB's answers that mean "someone else changed it first"."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pynamodb.exceptions import PynamoDBException

from openlookout.core.errors import ServiceError


def lost_condition(error: PynamoDBException) -> bool:
    """True when a conditional write failed (a duplicate, or a concurrent update won the race)."""
    return getattr(error, "cause_response_code", None) in (
        "ConditionalCheckFailedException",
        "TransactionCanceledException",
    )


@contextmanager
def refused_if_lost(refusal: ServiceError) -> Iterator[None]:
    """A conditional write whose lost condition the caller answers with `refusal` (a duplicate name,
    a resource gone); any other failure of the write goes on as it is."""
    try:
        yield
    except PynamoDBException as error:
        if lost_condition(error):
            raise refusal from None
        raise
