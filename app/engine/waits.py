"""What a due timer (`TaskRun.next_at`) does in a step: a retry's wait ends, a WAIT fallback runs out of time, a
Pause's duration passes, a LoopUntil's next iteration begins, a retry as a new execution is due. `celestra server`
finds the executions with a due timer (Store.due_timers) and steps them; the step calls `wake` first."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from app.engine import flowable_timeouts, loop_until
from app.engine.run_index import RunIndex
from app.model import flowables as fl
from app.model.flow import Flow
from app.model.records import Attempt, TaskRun
from app.model.states import State


class Walk(Protocol):
    flow: Flow
    now: datetime
    runs: RunIndex
    result: Any  # app.engine.step.StepResult

    def changed(self, run: TaskRun) -> None: ...

    def finish(self, run: TaskRun, state: State, error: str | None = None) -> None: ...

    def fail(self, run: TaskRun, message: str) -> None: ...

    def cancel(self, run: TaskRun, state: State, message: str) -> None: ...

    def log(self, run: TaskRun | None, level: str, message: str) -> None: ...


def wake(step: Walk, runs: list[TaskRun]) -> None:
    for run in runs:
        if run.next_at is None or run.next_at > step.now:
            continue
        run.next_at = None
        task = step.flow.task(run.task_id)
        if run.state == State.RETRYING and run.attempts and run.attempts[-1].state == State.RETRIED:
            step.finish(run, State.RETRIED)  # retry behavior CREATE_NEW_EXECUTION: the step ends the execution
            step.result.retry_execution = True
            continue
        if run.state == State.RETRYING and isinstance(task, fl.Subflow):
            run.state, run.ended = State.RUNNING, None
            run.attempts.append(Attempt(State.RUNNING, step.now))
            step.result.subflows.append((task, run))
        elif run.state == State.RETRYING:
            run.state, run.ended = State.CREATED, None
            step.result.dispatch.append(run)
        elif run.state == State.CREATED and run.worker_group:  # WAIT fallback ran out of time
            step.fail(run, f"No worker of group '{run.worker_group}' came up within the task's timeout")
            continue
        elif run.state == State.RUNNING and fl.is_flowable(task) and task.timeout is not None \
                and not isinstance(task, fl.Pause | fl.LoopUntil):
            flowable_timeouts.due(step, task, run)
        elif run.state == State.PAUSED and isinstance(task, fl.Pause):
            _pause_elapsed(step, task, run)
        elif run.state == State.RUNNING and isinstance(task, fl.LoopUntil):
            loop_until.next_iteration(run)
        step.changed(run)


def _pause_elapsed(step: Walk, task: fl.Pause, run: TaskRun) -> None:
    """Kestra: a pause resumed by hand always succeeds (asked.resume); one that reaches its pauseDuration ends
    as its `behavior` says; one that reaches its timeout (without a pauseDuration) fails."""
    if task.wait is None:
        _pause_failed(step, task, run, f"The pause was not resumed within its timeout ({task.timeout})")
    elif task.behavior == "RESUME":
        step.finish(run, State.SUCCESS)
    elif task.behavior == "WARN":
        step.finish(run, fl.allowed(task, State.WARNING))
    elif task.behavior == "FAIL":
        _pause_failed(step, task, run, f"The pause was not resumed within {task.wait} (behavior FAIL)")
    else:  # CANCEL: the execution ends CANCELLED once what still runs has stopped
        step.cancel(run, State.CANCELLED, f"The pause was not resumed within {task.wait}: execution cancelled "
                                          "(behavior CANCEL)")


def _pause_failed(step: Walk, task: fl.Pause, run: TaskRun, message: str) -> None:
    """FAILED, or WARNING when the pause allows failure (and SUCCESS when it also allows warning)."""
    end = fl.allowed(task, State.FAILED)
    if end.failed:
        step.fail(run, message)
    else:
        step.finish(run, end, message)
        step.log(run, "WARN", message)


__all__ = ["wake"]
