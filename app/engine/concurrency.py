"""A flow's `concurrency`: how many of its executions may run at once, and what a new one does past the limit.

Checked in the transaction that starts an execution (its first step), holding a lock per flow, so two executions
starting at once cannot both take the last slot. Past the limit the new execution ends before any task runs:
FAILED with behavior FAIL, CANCELLED with CANCEL, as Kestra does. QUEUE, which would hold it until a slot frees,
is refused at validation (app/model/flow.py) until the engine can start queued executions.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from app import runtime
from app.model.flow import Flow
from app.model.records import Execution, now
from app.model.states import TERMINAL, State
from app.store.tables import executions

ENDS = {"FAIL": State.FAILED, "CANCEL": State.CANCELLED}


def admit(conn: Connection, flow: Flow, ex: Execution) -> None:
    """Let `ex` start, or end it in its behavior's state, saying why in its error and its logs."""
    limit = flow.concurrency
    if limit is None or ex.state != State.CREATED:
        return
    running = _running(conn, flow.namespace, flow.id, excluding=ex.id)
    if running < limit.limit:
        return
    ex.state, ex.started, ex.ended = ENDS[limit.behavior], now(), now()
    ex.error = (f"the flow's concurrency limit ({limit.limit}) is reached: {running} execution"
                f"{'s' if running > 1 else ''} running; behavior {limit.behavior} ends this one {ex.state.value}")
    runtime.store().append_logs(conn, [{"execution_id": ex.id, "task_run_id": None, "task_id": None,
                                        "attempt": None, "timestamp": ex.ended, "level": "WARN",
                                        "message": ex.error}])


def _running(conn: Connection, namespace: str, flow_id: str, excluding: str) -> int:
    """Started and not ended executions of a flow, counted under a lock per flow held until the transaction ends
    (SQLite's write transaction is that lock already)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:flow))"),
                     {"flow": f"celestra.running:{namespace}/{flow_id}"})
    waiting = [s.value for s in TERMINAL] + [State.CREATED.value]
    return int(conn.execute(sa.select(sa.func.count()).select_from(executions).where(
        executions.c.namespace == namespace, executions.c.flow_id == flow_id, executions.c.id != excluding,
        executions.c.state.not_in(waiting))).scalar_one())
