"""Replay an ended execution, as Kestra does: a new execution of the same flow revision and inputs, which reuses
what came before a chosen task run and runs the flow again from there.

The runs created before the chosen one are copied, with their states, attempts and outputs (output files stay where
the first execution stored them); the flowables around it go back to RUNNING; the chosen run, what it contained
and what came after it are not copied, so the new execution's first step creates them again. Without a task run,
everything runs again. The original execution is left as it was.
"""

from __future__ import annotations

from dataclasses import replace

from app import runtime
from app.errors import CelestraError
from app.model.records import Execution, TaskRun, new_id
from app.model.states import State

from . import dispatch


def replay(execution_id: str, task: str | None = None) -> Execution:
    """Store the replay (CREATED) and start it; `task`: a task run id, or a task id (its first run). Refused
    (CelestraError) while the execution runs, or when `task` names no run of it."""
    store = runtime.store()
    old = store.get_execution(execution_id)
    if not old.state.terminal:
        raise CelestraError(f"Execution {old.id} must be terminated to be replayed, current state is "
                            f"'{old.state.value}'")
    kept = _kept_runs(old, task) if task else []
    new = Execution(id=new_id(), namespace=old.namespace, flow_id=old.flow_id, flow_revision=old.flow_revision,
                    flow_source=store.flow_source(old.id), inputs=dict(old.inputs), labels=dict(old.labels),
                    trigger=old.trigger)
    ids = {run.id: new_id() for run in kept}
    copies = [replace(run, id=ids[run.id], execution_id=new.id, parent_id=ids.get(run.parent_id or ""),
                      worker=None, worker_pid=None, claim_token=None, next_at=None, sent_at=None, sent_by=None)
              for run in kept]
    with store.begin() as conn:
        store.insert_execution(conn, new)
        store.insert_task_runs(conn, copies)
    dispatch.start_execution(new.id)  # lost with the broker away: the server starts a stalled CREATED execution
    return new


def _kept_runs(old: Execution, task: str) -> list[TaskRun]:
    runs = old.task_runs
    chosen = next((run for run in runs if run.id == task), None) or \
        next((run for run in runs if run.task_id == task), None)
    if chosen is None:
        raise CelestraError(f"Execution {old.id} has no task run of '{task}' to replay from")
    by_id = {run.id: run for run in runs}
    ancestors: set[str] = set()
    parent = by_id.get(chosen.parent_id or "")
    while parent is not None:
        ancestors.add(parent.id)
        parent = by_id.get(parent.parent_id or "")
    # In creation order a run's parent comes before it, so what was created before the chosen run holds no run
    # of it or inside it, and holds every run its ancestors are.
    return [replace(run, state=State.RUNNING, ended=None, error=None) if run.id in ancestors else run
            for run in runs[:runs.index(chosen)]]


__all__ = ["replay"]
