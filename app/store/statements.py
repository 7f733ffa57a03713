"""The statements of the per-task path, built once: SQLAlchemy then only looks up their compiled form, instead of
building and coercing a statement on every claim and step (a third of a step's time in Python, measured)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from app.model.states import State
from app.store.rows import EXECUTION_COLUMNS
from app.store.tables import TS, executions, task_runs

B = sa.bindparam
_bump = {"version": executions.c.version + 1}

LOCK_EXECUTION = (executions.update().where(executions.c.id == B("b_execution")).values(_bump)
                  .returning(*EXECUTION_COLUMNS))
BUMP_VERSION = (executions.update().where(executions.c.id == B("b_execution")).values(_bump)
                .returning(executions.c.version))
LOAD_EXECUTION = sa.select(*EXECUTION_COLUMNS).where(executions.c.id == B("b_execution"))

ALL_RUNS = sa.select(task_runs).where(task_runs.c.execution_id == B("b_execution")).order_by(task_runs.c.seq)
RUNS_SINCE = (
    sa.select(task_runs)
    .where(task_runs.c.execution_id == B("b_execution"),
           sa.or_(task_runs.c.version > B("b_version"), task_runs.c.id.in_(B("b_also", expanding=True))))
    .order_by(task_runs.c.seq)
)
LOAD_RUN = sa.select(task_runs).where(task_runs.c.id == B("b_run"))
INSERT_RUNS = task_runs.insert()
UPDATE_RUN_IF_UNCHANGED = task_runs.update().where(task_runs.c.id == B("b_id"),
                                                   task_runs.c.row_version == B("b_row_version"))

_claim = (
    task_runs.update()
    .where(task_runs.c.id == B("b_run"), task_runs.c.state == State.CREATED.value)
    .values(state=State.RUNNING.value, worker=B("b_worker"), worker_pid=B("b_pid"), claim_token=B("b_token"),
            next_at=None,
            row_version=task_runs.c.row_version + 1,
            started=sa.func.coalesce(task_runs.c.started, B("b_now", type_=TS)))
)
_own_group = task_runs.c.worker_group.in_(B("b_groups", expanding=True))
CLAIM = _claim.returning(*task_runs.c)
CLAIM_IN_GROUPS = _claim.where(_own_group).returning(*task_runs.c)
CLAIM_IN_GROUPS_OR_DEFAULT = _claim.where(sa.or_(_own_group, task_runs.c.worker_group.is_(None))) \
    .returning(*task_runs.c)

EXECUTION_PREFIX = "x_"


def _with_execution(claim: sa.UpdateBase, with_source: bool) -> sa.Select[Any]:
    """PostgreSQL: the claim and the read of its execution in one statement (one round trip, not two); with the
    flow's source for a process that has not parsed it yet."""
    claimed = claim.cte("claimed")
    columns = [*EXECUTION_COLUMNS, executions.c.flow_source] if with_source else EXECUTION_COLUMNS
    return (sa.select(*claimed.c, *(c.label(EXECUTION_PREFIX + c.name) for c in columns))
            .join_from(claimed, executions, executions.c.id == claimed.c.execution_id))


CLAIMS_WITH_EXECUTION = {(statement, with_source): _with_execution(statement, with_source)
                         for statement in (CLAIM, CLAIM_IN_GROUPS, CLAIM_IN_GROUPS_OR_DEFAULT)
                         for with_source in (False, True)}
