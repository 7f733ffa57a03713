"""A child execution's end is told to its parent once: the parent's step marks the child in its own transaction
(`parent_told`), so a notice sent twice (the ending process and the timer loop's recovery, or a redelivery) is
counted once. A ForEachItem counts its children's ends, where a second count would end it early."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from app.model.states import TERMINAL, State
from app.store.database import Store
from app.store.tables import executions, task_runs


def mark_told(conn: Connection, child_id: str) -> bool:
    """In the parent's step: True the first time only."""
    updated = conn.execute(sa.update(executions).where(executions.c.id == child_id, executions.c.parent_told.is_(False))
                           .values(parent_told=True))
    return updated.rowcount == 1


def running_under(store: Store, task_run_ids: list[str]) -> list[str]:
    """The child executions of these task runs that have not ended."""
    query = sa.select(executions.c.id).where(executions.c.parent_task_run_id.in_(task_run_ids),
                                             executions.c.state.not_in([s.value for s in TERMINAL]))
    with store.reads() as conn:
        return [row.id for row in conn.execute(query)]


def ended_untold(store: Store) -> list[str]:
    """Child executions that ended while their parent's Subflow run still waits (the notice was lost)."""
    child = executions.alias("child")
    query = (
        sa.select(child.c.id)
        .join(task_runs, task_runs.c.id == child.c.parent_task_run_id)
        .where(task_runs.c.state == State.RUNNING.value, child.c.state.in_([s.value for s in TERMINAL]),
               child.c.parent_told.is_(False))
    )
    with store.reads() as conn:
        return [row.id for row in conn.execute(query)]
