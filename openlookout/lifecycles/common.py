"""The write policy that every lifecycle's workflow side shares."""

from __future__ import annotations

import time
from collections.abc import Callable

from pynamodb.exceptions import PutError

from openlookout.core.observability import logger
from openlookout.storage.conditions import lost_condition

WORKFLOW_WRITE_ATTEMPTS = 5
RETRY_PAUSE_SECONDS = 0.2


def retry_workflow_write(write: Callable[[], None], refresh: Callable[[], None], what: str) -> None:
    """Runs `write` until it succeeds; after a failed version-checked save, `refresh` re-reads the item."""
    for attempt in range(1, WORKFLOW_WRITE_ATTEMPTS + 1):
        try:
            write()
            return
        except PutError as error:
            logger.warning(
                "status write failed; retrying on a fresh read",
                extra={
                    "what": what,
                    "attempt": attempt,
                    "lost_race": lost_condition(error),
                    "error": str(error),
                },
            )
            if attempt == WORKFLOW_WRITE_ATTEMPTS:
                raise RuntimeError(f"could not record {what} after {attempt} attempts") from error
            if not lost_condition(error):  # throttling or a network error: give it a moment
                time.sleep(RETRY_PAUSE_SECONDS * attempt)
            refresh()
