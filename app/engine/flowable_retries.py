"""A flowable's own `retry`: with RETRY_FAILED_TASK its failed children run again, as a new attempt of the
flowable; with CREATE_NEW_EXECUTION the flowable waits, then the whole flow runs again as a new execution
(app/engine/waits.py ends this one RETRIED when the wait is over, app/engine/retried.py starts the new one)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from app.engine.retries import next_try, retry_delay
from app.engine.run_index import RunIndex
from app.model.flow import Flow, Task
from app.model.flowables import is_flowable
from app.model.records import Attempt, Execution, TaskRun
from app.model.states import State


class Walk(Protocol):
    flow: Flow
    ex: Execution
    now: datetime
    runs: RunIndex

    def changed(self, run: TaskRun) -> None: ...


def retry(step: Walk, task: Task, run: TaskRun) -> bool:
    """Retry the failed flowable `run` if its policy allows; True when it waits for a retry."""
    policy = task.retry
    if policy is not None and policy.behavior == "CREATE_NEW_EXECUTION":
        delay = next_try(policy, run, step.ex, step.now)
        if delay is None:
            return False
        run.attempts[-1].state, run.attempts[-1].end = State.RETRIED, step.now
        run.state, run.next_at = State.RETRYING, step.now + delay
        step.changed(run)
        return True
    delay = retry_delay(policy, run, step.now)
    if delay is None:
        return False
    failed = [r for r in step.runs.children(run.id)
              if r.state == State.FAILED and not is_flowable(step.flow.task(r.task_id))]
    if not failed:
        return False
    for child in failed:
        child.state, child.next_at, child.ended = State.RETRYING, step.now + delay, None
        step.changed(child)
    run.attempts[-1].state, run.attempts[-1].end = State.FAILED, step.now
    run.attempts.append(Attempt(State.RUNNING, step.now))
    step.changed(run)
    return True


__all__ = ["retry"]
