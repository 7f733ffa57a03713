"""Riding out a database outage: what must not be lost is retried until the store answers again."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa

from app.store.database import StaleRun

log = logging.getLogger("celestra.store")
T = TypeVar("T")
FIRST_DELAY, MAX_DELAY = 0.05, 5.0


def is_outage(exc: BaseException) -> bool:
    """The database is unreachable or dropped the connection (not a bad statement, which retrying cannot fix)."""
    return isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError) or (
        isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated)


def until_stored(what: str, action: Callable[[], T], retry_for: float) -> T:
    """`action()`, retried with backoff while the store is unreachable, or while steps keep finding runs changed
    under them (StaleRun: claims racing a kill of thousands of runs), for up to `retry_for` seconds. `action` must
    be safe to repeat: a commit whose answer was lost is retried too."""
    deadline = time.monotonic() + retry_for
    delay = FIRST_DELAY
    while True:
        try:
            return action()
        except Exception as exc:
            if not (is_outage(exc) or isinstance(exc, StaleRun)) or time.monotonic() + delay > deadline:
                raise
            log.warning("%s: the database is unreachable (%s); retrying in %.2f s", what,
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__, delay)
            time.sleep(delay)
            delay = min(delay * 2, MAX_DELAY)
