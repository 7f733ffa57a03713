"""LoopUntil (and its older name WaitFor): the same tasks, iteration after iteration, until a condition holds.

Each iteration has task runs of its own: a child run carries the iteration it belongs to (`TaskRun.iteration`, the
loop's `iterationCount` then), so a new iteration creates new runs beside the ended ones instead of rewriting them,
and a run's attempts and logs stay those of its iteration. The loop's run waits for the next iteration with a timer
(`next_at`), like a retry, so a crash or an outage between iterations loses nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from app import templating
from app.model import flowables as fl
from app.model.flow import Task
from app.model.records import TaskRun
from app.model.states import State


class Walk(Protocol):
    now: datetime

    def sequence(self, tasks: list[Task], parent: TaskRun, value: str | None,
                 values: list[str]) -> tuple[bool, list[State]]: ...

    def evaluate(self, expression: Any, run: TaskRun, task: Task) -> Any: ...

    def changed(self, run: TaskRun) -> None: ...

    def log(self, run: TaskRun, level: str, message: str) -> None: ...


def iteration_of(run: TaskRun) -> int:
    """The iteration a LoopUntil run is in: its `iterationCount` output, 1 for the first."""
    return int((run.outputs or {}).get("iterationCount", 1))


def start(run: TaskRun) -> None:
    run.outputs = {"iterationCount": 1}


def next_iteration(run: TaskRun) -> None:
    """The loop's timer is due: the next iteration begins (the walk that follows creates its runs)."""
    run.outputs = {**(run.outputs or {}), "iterationCount": iteration_of(run) + 1}


def body(step: Walk, task: fl.LoopUntil, run: TaskRun) -> tuple[bool, list[State]]:
    """The current iteration's tasks; once they all succeeded, the condition decides: done, or another iteration
    after `interval` (the loop then waits on its timer, not done)."""
    if run.next_at is not None:
        return False, []  # between two iterations
    done, states = step.sequence(task.tasks, run, run.value, run.values)
    if not done or any(state.failed for state in states):
        return done, states
    if templating.is_truthy(step.evaluate(task.condition, run, task)):
        return True, states
    count, limits = iteration_of(run), task.checkFrequency
    reached = None
    if limits.maxIterations is not None and count >= limits.maxIterations:
        reached = f"maxIterations ({limits.maxIterations})"
    elif limits.maxDuration is not None and (run.started or step.now) + limits.maxDuration <= step.now:
        reached = f"maxDuration ({limits.maxDuration})"
    if reached is None:
        run.next_at = step.now + limits.interval
        step.changed(run)
        return False, states
    message = f"{reached} reached after {count} iteration(s) before the condition held"
    if not task.failOnMaxReached:
        step.log(run, "WARN", message)
        return True, states
    run.error = message
    step.log(run, "ERROR", message)
    return True, [*states, State.FAILED]


__all__ = ["body", "iteration_of", "next_iteration", "start"]
