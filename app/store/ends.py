"""Execution ends are announced on PostgreSQL (NOTIFY, sent when the ending transaction commits), so a client
waiting for an execution wakes at once instead of polling the database (SQLite: clients poll)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

CHANNEL = "celestra_execution_ended"


def announce(conn: Connection, execution_id: str) -> None:
    """In the transaction that ends the execution: delivered only if it commits."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_notify(:channel, :id)"), {"channel": CHANNEL, "id": execution_id})


class Listener:
    def __init__(self, dbapi_connection: Any):
        self.connection = dbapi_connection

    def wait(self, execution_id: str, timeout: float) -> bool:
        """True when `execution_id` was announced within `timeout` seconds (other ends are skipped)."""
        return any(note.payload == execution_id for note in self.connection.notifies(timeout=timeout))


@contextmanager
def listening(engine: Engine) -> Iterator[Listener | None]:
    """A listener on a pooled connection (None on SQLite); it stops listening before going back to the pool."""
    if engine.dialect.name != "postgresql":
        yield None
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        dbapi = conn.connection.dbapi_connection
        conn.execute(sa.text(f"LISTEN {CHANNEL}"))
        try:
            yield Listener(dbapi)
        finally:
            conn.execute(sa.text(f"UNLISTEN {CHANNEL}"))
