"""A flow's `sla` (Kestra's): what each execution must meet, checked at every step.

MAX_DURATION is breached once the execution has run for `duration`; the execution's `sla_due` holds when the next
such check falls due, so the server's timer loop steps it then even if nothing else happens. EXECUTION_ASSERTION is
breached when `assert` renders false (or cannot render) at a step. A breach adds the sla's `labels`; with behavior
FAIL or CANCEL it also ends the execution FAILED or CANCELLED, stopping what still runs; NONE only labels it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from app import templating
from app.model.flow import SLA, Flow, Task
from app.model.records import Execution, TaskRun
from app.model.states import State


class Walk(Protocol):
    flow: Flow
    ex: Execution
    now: datetime
    result: Any  # app.engine.step.StepResult
    context: Callable[[TaskRun | None, Task | None], dict[str, Any]]

    def log(self, run: TaskRun | None, level: str, message: str) -> None: ...


def check(step: Walk) -> State | None:
    """The end a breached sla imposes on the execution (FAILED or CANCELLED), or None."""
    ex, flow = step.ex, step.flow
    if not flow.sla or ex.state.terminal:
        return None
    started = ex.started or step.now
    end: State | None = None
    for sla in flow.sla:
        why = _breach(step, sla, started)
        if why is None:
            continue
        added = {key: value for key, value in sla.label_map.items() if ex.labels.get(key) != value}
        if added:
            ex.labels = {**ex.labels, **added}
            step.result.execution_changed = True
        message = f"SLA '{sla.id}' breached: {why}"
        if sla.behavior == "NONE":
            if added:  # said once: the labels show it from then on
                step.log(None, "WARN", message)
            continue
        step.log(None, "ERROR", f"{message}; the execution ends {'FAILED' if sla.behavior == 'FAIL' else 'CANCELLED'}")
        ex.error, end = message, State.FAILED if sla.behavior == "FAIL" else State.CANCELLED
        break
    ex.sla_due = min((started + sla.duration for sla in flow.sla
                      if sla.type == "MAX_DURATION" and sla.duration is not None and started + sla.duration > step.now),
                     default=None)
    return end


def _breach(step: Walk, sla: SLA, started: datetime) -> str | None:
    if sla.type == "MAX_DURATION":
        assert sla.duration is not None
        return f"still running after {sla.duration}" if step.now - started >= sla.duration else None
    try:
        holds = templating.is_truthy(templating.evaluate(sla.assert_ or "", step.context(None, None)))
    except templating.TemplateError as exc:
        return f"its assertion cannot be evaluated ({exc})"
    return None if holds else f"the assertion {sla.assert_} is false"


__all__ = ["check"]
