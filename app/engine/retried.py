"""Retry behavior CREATE_NEW_EXECUTION: the execution ended RETRIED and its flow runs again as a new execution.

The new execution is written in the transaction that ends the old one RETRIED (so a crash between the two cannot
lose the retry, and a stored CREATED execution is started again by the server if its start message is lost). It
has the same flow revision, inputs (as stored: SECRET ones stay encrypted, FILE ones point at the same files),
labels, trigger and parent task run; it counts as the next try of the chain, whose first execution and creation
date bound `maxAttempt` and `maxDuration`.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from app import runtime
from app.model.records import Execution, new_id
from app.store.tables import executions


def create(conn: Connection, ex: Execution) -> Execution:
    """Store the next try of `ex` (CREATED) in `conn`'s transaction."""
    source = ex.flow_source or conn.execute(
        sa.select(executions.c.flow_source).where(executions.c.id == ex.id)).scalar()
    again = Execution(
        id=new_id(), namespace=ex.namespace, flow_id=ex.flow_id, flow_revision=ex.flow_revision, flow_source=source,
        inputs=dict(ex.inputs), labels=dict(ex.labels), parent_execution_id=ex.parent_execution_id,
        parent_task_run_id=ex.parent_task_run_id, trigger=ex.trigger, original_id=ex.original_id or ex.id,
        retry_attempt=ex.retry_attempt + 1, original_created=ex.original_created or ex.created,
    )
    runtime.store().insert_execution(conn, again)
    return again


def retry_of(ex: Execution) -> str | None:
    """The id of the execution that retries `ex` (which ended RETRIED), if any."""
    query = sa.select(executions.c.id).where(executions.c.original_id == (ex.original_id or ex.id),
                                             executions.c.retry_attempt == ex.retry_attempt + 1)
    with runtime.store().reads() as conn:
        found = conn.execute(query).scalar()
    return str(found) if found is not None else None


__all__ = ["create", "retry_of"]
