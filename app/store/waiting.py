"""The runs whose message is due: a CREATED task run is stored with `sent_at` in the transaction that makes it
runnable, and is the record of a message to send (app/engine/redelivery.py reads it)."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from app.model.states import State
from app.store.database import Store
from app.store.tables import executions, task_runs


def waiting_counts(store: Store, sent_before: datetime) -> dict[str | None, int]:
    """How many CREATED task runs of each worker group (None: no group) had their message sent before
    `sent_before`."""
    query = (sa.select(task_runs.c.worker_group, sa.func.count())
             .where(task_runs.c.state == State.CREATED.value, task_runs.c.sent_at < sent_before)
             .group_by(task_runs.c.worker_group))
    with store.reads() as conn:
        return {row[0]: int(row[1]) for row in conn.execute(query)}


def waiting_runs(store: Store, sent_before: datetime, group: str | None, limit: int) -> list[dict[str, Any]]:
    """The `limit` CREATED task runs of `group` whose message is the oldest, if sent before `sent_before`."""
    query = (
        sa.select(task_runs.c.execution_id, task_runs.c.id, task_runs.c.task_id, task_runs.c.worker_group,
                  task_runs.c.sent_by, executions.c.namespace, executions.c.flow_id)
        .join(executions, executions.c.id == task_runs.c.execution_id)
        .where(task_runs.c.state == State.CREATED.value, task_runs.c.sent_at < sent_before,
               task_runs.c.worker_group.is_(None) if group is None else task_runs.c.worker_group == group)
        .order_by(task_runs.c.sent_at)
        .limit(limit)
    )
    with store.reads() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def mark_sent(store: Store, task_run_ids: list[str], moment: datetime) -> None:
    """Their messages were sent again (no version: a step never decides anything on `sent_at`)."""
    with store.begin() as conn:
        conn.execute(task_runs.update().where(task_runs.c.id.in_(task_run_ids),
                                              task_runs.c.state == State.CREATED.value)
                     .values(sent_at=moment, sent_by=os.getpid()))
