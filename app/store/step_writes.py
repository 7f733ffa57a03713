"""PostgreSQL: everything a step writes, in one statement.

A step inserts the runs it created, updates the runs it changed (each only if its row is still at the version it was
read at), adds its log lines and updates the execution (telling waiters when it ends). Sent one by one, that is up
to four round trips inside the step's lock; as data-modifying CTEs of one statement it is one, which is most of a
small step's time on the wire. The statement of each shape (how many rows of each kind) is built once, with bind
parameters, so a step only fills in values. Steps that write many rows (a fan-out's children) keep the separate,
batched statements: a statement per shape would not be reused, and the round trips are few next to the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import sqlalchemy as sa

from app.store import ends
from app.store.tables import executions, logs, task_runs

MAX_ROWS = 8  # per kind; above it the step writes table by table
# The columns each kind of row writes, in a fixed order (the keys of rows.task_run_row, rows.execution_row and
# events.log_row, with what a step adds or leaves out).
RUN_INSERT = ("id", "execution_id", "task_id", "parent_id", "value", "has_value", "loop_values", "iteration",
              "loop_round", "state", "attempts", "outputs", "worker_group", "worker", "worker_pid", "claim_token",
              "external_id", "error", "created", "started", "ended", "next_at", "sent_at", "sent_by", "version")
RUN_UPDATE = ("loop_values", "iteration", "state", "attempts", "outputs", "worker_group", "worker", "worker_pid",
              "claim_token", "error", "started", "ended", "next_at", "sent_at", "sent_by", "version", "row_version")
LOG = ("execution_id", "task_run_id", "task_id", "attempt", "timestamp", "level", "message")
EXECUTION = ("state", "inputs", "outputs", "labels", "parent_execution_id", "parent_task_run_id",
             "downstream_checked", "error", "started", "ended", "version")


def fits(created: int, changed: int, log_lines: int) -> bool:
    return created <= MAX_ROWS and changed <= MAX_ROWS and log_lines <= MAX_ROWS


@lru_cache(maxsize=256)
def statement(created: int, changed: int, log_lines: int, execution: bool, announce: bool) -> sa.Select[Any]:
    """Selects how many of the `changed` runs were updated (fewer: one changed since it was read), and notifies
    the end's channel when `announce`."""
    B = sa.bindparam
    ctes: list[Any] = []
    # A row per CTE: SQLAlchemy caches the compiled form of single-row INSERTs, not of multi-row ones.
    ctes += [task_runs.insert().values({c: B(f"i{i}_{c}", type_=task_runs.c[c].type) for c in RUN_INSERT})
             .cte(f"created_run_{i}") for i in range(created)]
    updated = [
        task_runs.update()
        .where(task_runs.c.id == B(f"u{i}_id"), task_runs.c.row_version == B(f"u{i}_was"))
        .values({c: B(f"u{i}_{c}", type_=task_runs.c[c].type) for c in RUN_UPDATE})
        .returning(task_runs.c.id).cte(f"changed_run_{i}")
        for i in range(changed)
    ]
    ctes += [logs.insert().values({c: B(f"l{i}_{c}", type_=logs.c[c].type) for c in LOG}).cte(f"log_line_{i}")
             for i in range(log_lines)]
    columns: list[Any] = [sum((sa.select(sa.func.count()).select_from(u).scalar_subquery() for u in updated),
                              sa.literal(0))]
    if execution:
        written = (executions.update().where(executions.c.id == B("e_id"))
                   .values({c: B(f"e_{c}", type_=executions.c[c].type) for c in EXECUTION})
                   .returning(executions.c.id).cte("execution"))
        if announce:
            columns.append(sa.select(sa.func.pg_notify(ends.CHANNEL, written.c.id)).select_from(written)
                           .scalar_subquery())
        else:
            ctes.append(written)
    return sa.select(*columns).add_cte(*ctes)


def parameters(created: Sequence[dict[str, Any]], changed: Sequence[dict[str, Any]],
               log_lines: Sequence[dict[str, Any]], execution: dict[str, Any] | None) -> dict[str, Any]:
    """The bind values of `statement` for these rows; a changed row carries `b_id` and `b_row_version` (the
    version it was read at), as UPDATE_RUN_IF_UNCHANGED takes them."""
    params: dict[str, Any] = {}
    for i, row in enumerate(created):
        params.update({f"i{i}_{c}": row[c] for c in RUN_INSERT})
    for i, row in enumerate(changed):
        params.update({f"u{i}_{c}": row[c] for c in RUN_UPDATE})
        params[f"u{i}_id"], params[f"u{i}_was"] = row["b_id"], row["b_row_version"]
    for i, row in enumerate(log_lines):
        params.update({f"l{i}_{c}": row[c] for c in LOG})
    if execution is not None:
        params.update({f"e_{c}": execution[c] for c in EXECUTION})
        params["e_id"] = execution["id"]
    return params
