"""The flowables that start several children: Dag, ForEach, EachSequential, EachParallel (Parallel is a group)."""

from __future__ import annotations

import json
from typing import Any, Protocol

from app import templating
from app.model import flowables as fl
from app.model.flow import Task
from app.model.records import TaskRun
from app.model.states import State


class Walk(Protocol):
    """What these need of the step (app/engine/step.py)."""

    def find(self, parent: TaskRun | None, task: Task, value: str | None) -> TaskRun | None: ...

    def visit(self, task: Task, parent: TaskRun | None, value: str | None, values: list[str],
              may_start: bool = True, iteration: int | None = None) -> TaskRun | None: ...

    def evaluate(self, expression: Any, run: TaskRun, task: Task) -> Any: ...


def dag(step: Walk, task: fl.Dag, run: TaskRun) -> tuple[bool, list[State]]:
    runs = {node.task.id: step.find(run, node.task, run.value) for node in task.tasks}
    failed = any(r is not None and r.state.failed for r in runs.values())
    running = sum(1 for r in runs.values() if r is not None and not r.state.terminal)
    done, states = True, []
    for node in task.tasks:
        deps_ok = all((d := runs.get(dep)) is not None and d.state.terminal and not d.state.failed
                      for dep in node.dependsOn)
        may_start = deps_ok and not failed and (task.concurrent == 0 or running < task.concurrent)
        existed = runs[node.task.id] is not None
        child = step.visit(node.task, run, run.value, run.values, may_start)
        if child is None:
            done = done and failed
            continue
        if not existed and not child.state.terminal:
            running += 1
        runs[node.task.id] = child
        if child.state.terminal:
            states.append(child.state)
        else:
            done = False
    return done, states

def loop_values(step: Walk, task: fl.ForEach | fl.EachSequential | fl.EachParallel, run: TaskRun) -> list[str]:
    raw = task.values if isinstance(task, fl.ForEach) else task.value
    values = step.evaluate(raw, run, task) if isinstance(raw, str) else raw
    if isinstance(values, str):
        try:
            values = json.loads(values)
        except ValueError as exc:
            raise templating.TemplateError(f"Task '{task.id}': values must be a JSON array, got {raw!r}") from exc
    if not isinstance(values, list):
        raise templating.TemplateError(f"Task '{task.id}': values must be a list, got {values!r}")
    nulls = sum(1 for item in values if item is None)
    if nulls:
        raise templating.TemplateError(f"Found '{nulls}' null values on Each, with values={java_text(values)}")
    return [item if isinstance(item, str) else json.dumps(item, separators=(",", ":")) for item in values]

def loop(step: Walk, task: fl.ForEach | fl.EachSequential | fl.EachParallel, run: TaskRun) -> tuple[bool, list[State]]:
    items = loop_values(step, task, run)
    if isinstance(task, fl.EachParallel):
        return each_parallel(step, task, run, items)
    limit = task.concurrencyLimit if isinstance(task, fl.ForEach) else 1
    active = 0
    failed = False
    done, states = True, []
    for index, item in enumerate(items):
        started = any(step.find(run, t, item) is not None for t in task.tasks)
        may_start = started or (not failed and (limit == 0 or active < limit))
        if not may_start:
            done = False if not failed else done
            continue
        iteration_done, iteration_states = iteration(step, task.tasks, run, item, [*run.values, item], index)
        states += iteration_states
        if not iteration_done:
            done = False
            active += 1
        elif any(s.failed for s in iteration_states):
            failed = True
    return done, states

def iteration(step: Walk, tasks: list[Task], parent: TaskRun, item: str, values: list[str],
               index: int) -> tuple[bool, list[State]]:
    states: list[State] = []
    for task in tasks:
        if task.disabled:
            continue
        child = step.visit(task, parent, item, values, iteration=index)
        if child is None or not child.state.terminal:
            return False, states
        states.append(child.state)
        if child.state.failed:
            return True, states
    return True, states

def each_parallel(step: Walk, task: fl.EachParallel, run: TaskRun, items: list[str]) -> tuple[bool, list[State]]:
    pairs = [(item, t) for item in items for t in task.tasks if not t.disabled]
    existing = {(item, t.id): step.find(run, t, item) for item, t in pairs}
    failed = any(r is not None and r.state.failed for r in existing.values())
    running = sum(1 for r in existing.values() if r is not None and not r.state.terminal)
    done, states = True, []
    for index, (item, child_task) in enumerate(pairs):
        had = existing[(item, child_task.id)] is not None
        may_start = not failed and (task.concurrent == 0 or running < task.concurrent)
        child = step.visit(child_task, run, item, [*run.values, item], may_start, iteration=index)
        if child is None:
            done = done and failed
            continue
        if not had and not child.state.terminal:
            running += 1
        if child.state.terminal:
            states.append(child.state)
        else:
            done = False
    return done, states


def java_text(value: Any) -> str:
    """Java's toString of lists and maps: how Kestra prints values in its messages."""
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ", ".join(java_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={java_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
