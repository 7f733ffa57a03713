"""A flowable's `timeout` (Kestra: the longest a task may run), enforced by the executor: a flowable still running
once its current attempt has lasted that long ends FAILED (WARNING with allowFailure), and what still runs under it
ends KILLED (a worker running one of those stops it: workers/execute.py KillWatch watches its task run). The
deadline is the flowable run's timer (`next_at`), so the server's timer loop steps the execution then, even if
nothing else happens; a crash or an outage in between loses nothing."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from app.engine.run_index import RunIndex
from app.model.flow import Task
from app.model.flowables import allowed
from app.model.inputs.values import format_duration
from app.model.records import TaskRun
from app.model.states import State


class Walk(Protocol):
    now: datetime
    runs: RunIndex

    def changed(self, run: TaskRun) -> None: ...

    def finish(self, run: TaskRun, state: State, error: str | None = None) -> None: ...

    def log(self, run: TaskRun | None, level: str, message: str) -> None: ...


def _deadline(task: Task, run: TaskRun) -> datetime | None:
    if task.timeout is None:
        return None
    started = run.attempts[-1].start if run.attempts else run.started
    return started + task.timeout if started is not None else None


def arm(step: Walk, task: Task, run: TaskRun) -> None:
    """Make sure a running flowable's timer goes off at its deadline (a new attempt moves the deadline)."""
    deadline = _deadline(task, run)
    if deadline is not None and run.state == State.RUNNING and (run.next_at is None or run.next_at > deadline):
        run.next_at = deadline
        step.changed(run)


def due(step: Walk, task: Task, run: TaskRun) -> None:
    """The flowable's timer went off: end it if its deadline has passed, else wait for the deadline again."""
    deadline = _deadline(task, run)
    if deadline is None or task.timeout is None:
        return
    if step.now < deadline:
        arm(step, task, run)
        return
    for below in _descendants(step.runs, run):
        if not below.state.terminal:
            step.finish(below, State.KILLED)
    message = f"Task '{task.id}' timed out after {format_duration(task.timeout)}"
    end = allowed(task, State.FAILED)
    step.finish(run, end, message)
    step.log(run, "ERROR" if end.failed else "WARN", message)


def _descendants(runs: RunIndex, run: TaskRun) -> list[TaskRun]:
    found, todo = [], [run]
    while todo:
        for child in runs.children(todo.pop().id):
            found.append(child)
            todo.append(child)
    return found


__all__ = ["arm", "due"]
