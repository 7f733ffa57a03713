"""Restart an ended execution from its failed task runs, as Kestra does: the same execution, a new attempt.

The failed runs and their enclosing flowables go back to waiting (a task run to CREATED, keeping its attempts, so
its next attempt is appended; a flowable to RUNNING); what ran successfully stays as it is and is not run again.
The runs of `errors` handlers (the flow's and every flowable's, with what they contain) are deleted, so they run
again if the restarted part fails again, and so are the runs inside a restarted WorkingDirectory, which runs them
itself. The execution is RUNNING again and its restart count goes up: a process holding a copy of it from before
the restart reads it whole (app/engine/memory.py), since that copy still holds the deleted runs.
"""

from __future__ import annotations

from app.errors import CelestraError
from app.model.flow import Flow, Task
from app.model.flowables import Subflow, WorkingDirectory, is_flowable
from app.model.for_each_item import ForEachItemExecutable
from app.model.records import TaskRun
from app.model.states import State
from app.store.tables import executions, task_runs

from . import events


def restart(execution_id: str) -> list[str]:
    """Restart the execution; returns the ids of the task runs that wait to run again. Refused (CelestraError)
    when it has not ended or has no failed task run."""
    restarted: list[str] = []

    def mutate(event: events.Event) -> None:
        ex, flow, index = event.ex, event.flow, event.kept.runs
        if ex.parent_execution_id:
            raise CelestraError(f"Execution {ex.id} is a subflow's execution: restarting it alone is not supported "
                                "yet")
        if not ex.state.terminal:
            raise CelestraError(f"Execution {ex.id} must be terminated to be restarted, current state is "
                                f"'{ex.state.value}'")
        failed = [run for run in ex.task_runs if run.state == State.FAILED]
        if not failed:
            raise CelestraError(f"Execution {ex.id}: no failed task found to restart it from")
        subflows = [run.task_id for run in failed
                    if isinstance(flow.task(run.task_id), Subflow | ForEachItemExecutable)]
        if subflows:
            raise CelestraError(f"Execution {ex.id}: restarting a failed Subflow or ForEachItem task "
                                f"({', '.join(subflows)}) is not supported yet")
        again: dict[str, TaskRun] = {}
        for run in failed:  # each failed run and the flowables around it
            current: TaskRun | None = run
            while current is not None and current.id not in again:
                again[current.id] = current
                current = index.by_id.get(current.parent_id) if current.parent_id else None
        handlers = _error_handlers(flow)
        after = {task.id for task in flow.afterExecution}  # they run again once the restarted execution has ended
        doomed = {run.id for run in ex.task_runs if (run.task_id in handlers or run.task_id in after)
                  and run.id not in again}
        doomed |= {run.id for run in ex.task_runs if run.parent_id in again
                   and isinstance(flow.task(again[run.parent_id].task_id), WorkingDirectory)}
        doomed = _with_descendants(doomed, ex.task_runs)
        _delete(event, doomed)
        for run in again.values():
            task = flow.task(run.task_id)
            run.ended, run.error, run.next_at = None, None, None
            if is_flowable(task):
                run.state = State.RUNNING
            else:
                run.state, run.worker, run.worker_pid, run.claim_token = State.CREATED, None, None, None
                event.send_again.append(run)
                restarted.append(run.id)
            event.touch(run)
        ex.state, ex.ended, ex.error, ex.final_state = State.RUNNING, None, None, None
        ex.restarts += 1
        event.conn.execute(executions.update().where(executions.c.id == ex.id).values(restarts=ex.restarts))

    events.advance(execution_id, mutate, full=True)
    return restarted


def _error_handlers(flow: Flow) -> set[str]:
    """The ids of every `errors` task of the flow and of its flowables, with the tasks inside them."""
    found: set[str] = set()

    def collect(tasks: list[Task]) -> None:
        for task in tasks:
            found.add(task.id)
            for children in task.child_lists():
                collect(children)

    collect(flow.errors)
    for task in flow.all_tasks():
        collect(getattr(task, "errors", None) or [])
    return found


def _with_descendants(ids: set[str], runs: list[TaskRun]) -> set[str]:
    found, grew = set(ids), True
    while grew:
        more = {run.id for run in runs if run.parent_id in found and run.id not in found}
        found |= more
        grew = bool(more)
    return found


def _delete(event: events.Event, ids: set[str]) -> None:
    if not ids:
        return
    event.conn.execute(task_runs.delete().where(task_runs.c.execution_id == event.ex.id,
                                                task_runs.c.id.in_(sorted(ids))))
    event.kept.runs.remove(ids)
