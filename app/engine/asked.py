"""What a user asks of a running execution: kill it, or resume what is paused (Client.kill, Client.resume)."""

from __future__ import annotations

from typing import Any

from app.engine import child_kills
from app.engine.events import Event, advance
from app.model.flowables import Pause
from app.model.inputs import resolve_inputs
from app.model.records import now
from app.model.states import State


def kill(execution_id: str) -> None:
    advance(execution_id, child_kills.kill, full=True)


def resume(execution_id: str, inputs: dict[str, Any] | None = None) -> bool:
    """End every paused task SUCCESS; a Pause's `onResume` inputs are validated from `inputs` (an InputError leaves
    the execution paused) and become its `onResume` output."""
    resumed = False

    def mutate(event: Event) -> None:
        nonlocal resumed
        for run in event.ex.task_runs:
            if run.state == State.PAUSED:
                task = event.flow.task(run.task_id)
                if isinstance(task, Pause) and task.onResume:
                    run.outputs = {"onResume": resolve_inputs(task.onResume, inputs or {})}
                run.state, run.ended, run.next_at = State.SUCCESS, now(), None
                if run.attempts and not run.attempts[-1].state.terminal:
                    run.attempts[-1].state, run.attempts[-1].end = State.SUCCESS, run.ended
                event.touch(run)
                resumed = True

    advance(execution_id, mutate, full=True)
    return resumed
