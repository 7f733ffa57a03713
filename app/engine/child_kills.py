"""A kill goes down to child executions, as in Kestra: a Subflow or ForEachItem run that ends KILLED (its execution
killed, a flowable above it timed out, an sla ended the execution) kills the child executions still running under
it, after the parent's transaction has committed (app/engine/events.py). Their ends then change nothing in the
parent: the run they would have ended has ended already."""

from __future__ import annotations

from typing import Protocol

from app import runtime
from app.model.flow import Flow
from app.model.flowables import Subflow
from app.model.for_each_item import ForEachItemExecutable
from app.model.records import Execution, TaskRun
from app.model.states import State
from app.store.children import running_under


class Killed(Protocol):
    ex: Execution

    def end_waiting(self, state: State) -> None: ...


def kill(event: Killed) -> None:
    """The mutation of a kill: the execution is KILLING; what waits ends KILLED now, a worker stops what runs."""
    if not event.ex.state.terminal:
        event.ex.state = State.KILLING
        event.end_waiting(State.KILLED)


def children_to_kill(flow: Flow, changed: list[TaskRun]) -> list[str]:
    """The running child executions of the Subflow and ForEachItem runs that a step ended KILLED."""
    callers = [run.id for run in changed if run.state == State.KILLED
               and isinstance(flow.task(run.task_id), Subflow | ForEachItemExecutable)]
    return running_under(runtime.store(), callers) if callers else []


__all__ = ["children_to_kill", "kill"]
