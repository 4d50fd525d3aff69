"""Recognising DynamoDB's answers that mean "someone else changed it first"."""

from __future__ import annotations

from pynamodb.exceptions import PynamoDBException


def lost_condition(error: PynamoDBException) -> bool:
    """True when a conditional write failed (a duplicate, or a concurrent update won the race)."""
    return getattr(error, "cause_response_code", None) in (
        "ConditionalCheckFailedException",
        "TransactionCanceledException",
    )
