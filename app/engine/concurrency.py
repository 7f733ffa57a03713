"""A flow's `concurrency`: how many of its executions may run at once, and what a new one does past the limit.

Checked in the transaction that starts an execution (its first step), holding a lock per flow, so two executions
starting at once cannot both take the last slot. Past the limit, as Kestra does: behavior QUEUE (the default)
keeps the new execution QUEUED, and the end of a running one starts the oldest queued (`release`; the timer loop
starts it too, should that message be lost); FAIL ends it FAILED, CANCEL ends it CANCELLED, before any task runs.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from app import runtime
from app.engine import dispatch
from app.model.flow import Flow
from app.model.records import Execution, now
from app.model.states import TERMINAL, State
from app.store.tables import executions

ENDS = {"FAIL": State.FAILED, "CANCEL": State.CANCELLED}


def admit(conn: Connection, flow: Flow, ex: Execution) -> None:
    """Let `ex` (new, or queued) start, keep it QUEUED, or end it in its behavior's state, saying why."""
    limit = flow.concurrency
    if limit is None or ex.state not in (State.CREATED, State.QUEUED):
        return
    running = _running(conn, flow.namespace, flow.id, excluding=ex.id)
    if running < limit.limit:
        ex.state = State.CREATED  # a queued one starts now
        return
    reached = (f"the flow's concurrency limit ({limit.limit}) is reached: {running} execution"
               f"{'s' if running > 1 else ''} running")
    if limit.behavior == "QUEUE":
        if ex.state == State.CREATED:
            ex.state = State.QUEUED
            _log(conn, ex, f"{reached}; queued until one ends")
        return
    ex.state, ex.started, ex.ended = ENDS[limit.behavior], now(), now()
    ex.error = f"{reached}; behavior {limit.behavior} ends this one {ex.state.value}"
    _log(conn, ex, ex.error)


def release(flow: Flow) -> None:
    """An execution of the flow ended: the oldest queued one may start (its start step admits it, or not)."""
    if flow.concurrency is not None:
        for execution_id in queued_heads(flow.namespace, flow.id):
            dispatch.start_execution(execution_id)


def queued_heads(namespace: str | None = None, flow_id: str | None = None, scan: int = 500) -> list[str]:
    """The oldest QUEUED execution of each flow (of one flow when named)."""
    query = sa.select(executions.c.id, executions.c.namespace, executions.c.flow_id).where(
        executions.c.state == State.QUEUED.value).order_by(executions.c.created).limit(scan)
    if namespace is not None:
        query = query.where(executions.c.namespace == namespace, executions.c.flow_id == flow_id)
    heads: dict[tuple[str, str], str] = {}
    with runtime.store().reads() as conn:
        for row in conn.execute(query):
            heads.setdefault((row.namespace, row.flow_id), row.id)
    return list(heads.values())


def _log(conn: Connection, ex: Execution, message: str) -> None:
    runtime.store().append_logs(conn, [{"execution_id": ex.id, "task_run_id": None, "task_id": None,
                                        "attempt": None, "timestamp": now(), "level": "WARN", "message": message}])


def _running(conn: Connection, namespace: str, flow_id: str, excluding: str) -> int:
    """Started and not ended executions of a flow, counted under a lock per flow held until the transaction ends
    (SQLite's write transaction is that lock already)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:flow))"),
                     {"flow": f"celestra.running:{namespace}/{flow_id}"})
    waiting = [s.value for s in TERMINAL] + [State.CREATED.value, State.QUEUED.value]
    return int(conn.execute(sa.select(sa.func.count()).select_from(executions).where(
        executions.c.namespace == namespace, executions.c.flow_id == flow_id, executions.c.id != excluding,
        executions.c.state.not_in(waiting))).scalar_one())
