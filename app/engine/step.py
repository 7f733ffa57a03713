"""The executor step: from a flow and the task runs that exist, decide what starts next and what has ended.

`Step.run()` is deterministic given its inputs and only mutates the in-memory execution; the caller
(app/engine/events.py) persists the result inside the execution's lock and sends the messages after commit. Running the
same step twice creates nothing twice: a task run is identified by its position (parent run, task id, loop value).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app import templating
from app.engine.retries import retry_delay
from app.engine.routing import Route
from app.engine.variables import secret_inputs_masker, without_secret_inputs
from app.model import flowables as fl
from app.model.flow import Flow, Task
from app.model.inputs import InputError, coerce_output
from app.model.records import Attempt, Execution, TaskRun, new_id
from app.model.states import State, worst

ContextFactory = Callable[[TaskRun | None, Task | None], dict[str, Any]]


@dataclass
class StepResult:
    created: list[TaskRun] = field(default_factory=list)
    changed: dict[str, TaskRun] = field(default_factory=dict)
    dispatch: list[TaskRun] = field(default_factory=list)
    subflows: list[tuple[fl.Subflow, TaskRun]] = field(default_factory=list)
    logs: list[tuple[TaskRun, str, str]] = field(default_factory=list)  # (run, level, message)
    execution_changed: bool = False
    ended: bool = False


def is_flowable(task: Task) -> bool:
    # WorkingDirectory is a flowable in Kestra's model but runs on one worker as a whole.
    return task.kind == "flowable" and not isinstance(task, fl.WorkingDirectory)


class Step:
    def __init__(self, flow: Flow, ex: Execution, now: datetime, context: ContextFactory,
                 route: Callable[[Task, TaskRun], Route] | None = None,
                 group_alive: Callable[[str], bool] | None = None):
        self.flow = flow
        self.ex = ex
        self.now = now
        self.context = context
        self.route = route or (lambda task, run: Route(None))
        self.group_alive = group_alive or (lambda group: True)
        self.result = StepResult()
        self.by_position: dict[tuple[str | None, str, str | None], TaskRun] = {
            (run.parent_id, run.task_id, run.value): run for run in ex.task_runs
        }
        self.killing = ex.state == State.KILLING

    # -- entry point --------------------------------------------------------------------------------------------
    def run(self) -> StepResult:
        ex = self.ex
        if ex.state.terminal:
            return self.result
        if ex.state == State.CREATED:
            ex.state, ex.started = State.RUNNING, self.now
            self.result.execution_changed = True
        self._wake_timers()
        state = self._group(self.flow.tasks, self.flow.errors, self.flow.finally_, None, None, [])
        if self.killing:
            state = State.KILLED if all(run.state.terminal for run in ex.task_runs) else None
        if state is not None:
            self._end(state)
        elif not self.killing:
            paused = any(run.state == State.PAUSED for run in ex.task_runs)
            wanted = State.PAUSED if paused else State.RUNNING
            if ex.state != wanted:  # Kestra shows a paused execution as PAUSED until it is resumed
                ex.state = wanted
                self.result.execution_changed = True
        self._mask_secret_inputs()
        return self.result

    def _mask_secret_inputs(self) -> None:
        """What this step stores (a Switch's value, rendering errors, log lines) holds no SECRET input in clear text:
        they were rendered with the inputs decrypted. Loop values are left as they are: they identify the runs."""
        if not any(inp.type == "SECRET" for inp in self.flow.inputs):
            return
        try:
            masker = secret_inputs_masker(self.flow, self.context(None, None))
        except templating.TemplateError:  # inputs this process cannot decrypt: nothing was rendered with them
            return
        result = self.result
        for run in [*result.created, *result.changed.values()]:
            run.outputs = masker.mask_value(run.outputs)
            run.error = run.error and masker.mask(run.error)
        result.logs = [(run, level, masker.mask(message)) for run, level, message in result.logs]
        self.ex.error = self.ex.error and masker.mask(self.ex.error)

    def _end(self, state: State) -> None:
        ex = self.ex
        if state == State.SUCCESS and self.flow.outputs:
            try:
                scope = self.context(None, None)
                ex.outputs = without_secret_inputs(self.flow, scope, {
                    o.id: coerce_output(o.id, o.type, templating.render_value(o.value, scope))
                    for o in self.flow.outputs})
            except (templating.TemplateError, InputError) as exc:
                ex.error, state = f"Flow outputs: {exc}", State.FAILED
        ex.state, ex.ended = state, self.now
        self.result.execution_changed = self.result.ended = True

    def _wake_timers(self) -> None:
        for run in self.ex.task_runs:
            if run.next_at is None or run.next_at > self.now:
                continue
            run.next_at = None
            task = self.flow.task(run.task_id)
            if run.state == State.RETRYING and isinstance(task, fl.Subflow):
                run.state, run.ended = State.RUNNING, None
                run.attempts.append(Attempt(State.RUNNING, self.now))
                self.result.subflows.append((task, run))
            elif run.state == State.RETRYING:
                run.state, run.ended = State.CREATED, None
                self.result.dispatch.append(run)
            elif run.state == State.CREATED and run.worker_group:  # WAIT fallback ran out of time
                self._fail(run, f"No worker of group '{run.worker_group}' came up within the task's timeout")
                continue
            elif run.state == State.PAUSED:
                run.state = State.SUCCESS
                run.ended = self.now
            self._changed(run)

    # -- bookkeeping --------------------------------------------------------------------------------------------
    def _changed(self, run: TaskRun) -> None:
        if run not in self.result.created:
            self.result.changed[run.id] = run

    def _find(self, parent: TaskRun | None, task: Task, value: str | None) -> TaskRun | None:
        return self.by_position.get((parent.id if parent else None, task.id, value))

    def _create(self, task: Task, parent: TaskRun | None, value: str | None, values: list[str],
                iteration: int | None = None) -> TaskRun:
        run = TaskRun(
            id=new_id(), execution_id=self.ex.id, task_id=task.id, parent_id=parent.id if parent else None,
            value=value, values=list(values), iteration=iteration, created=self.now,
        )
        self.ex.task_runs.append(run)
        self.by_position[(run.parent_id, task.id, value)] = run
        self.result.created.append(run)
        if is_flowable(task):
            run.state, run.started = State.RUNNING, self.now
            run.attempts.append(Attempt(State.RUNNING, self.now))
            self._start_flowable(task, run)
        else:
            self._route(task, run)
        return run

    def _route(self, task: Task, run: TaskRun) -> None:
        """Send a new runnable run to its worker group, or apply the group's fallback when none is alive."""
        try:
            route = self.route(task, run)
        except Exception as exc:  # a templated key that cannot render, or an undeclared group
            self._fail(run, str(exc))
            return
        run.worker_group = route.group
        if route.group is not None and not self.group_alive(route.group):
            if route.fallback == "FAIL":
                self._fail(run, f"No worker of group '{route.group}' is alive (fallback FAIL)")
                return
            if route.fallback == "CANCEL":
                self._finish(run, State.KILLED)
                self.result.logs.append((run, "WARN", f"No worker of group '{route.group}' is alive: "
                                                      "execution cancelled (fallback CANCEL)"))
                self.ex.state, self.killing = State.KILLING, True
                self.result.execution_changed = True
                return
            if task.timeout is not None:  # WAIT, but not longer than the task may take
                run.next_at = self.now + task.timeout
        self.result.dispatch.append(run)

    def _fail(self, run: TaskRun, message: str) -> None:
        self._finish(run, State.FAILED, message)
        self.result.logs.append((run, "ERROR", message))

    def _finish(self, run: TaskRun, state: State, error: str | None = None) -> None:
        run.state, run.ended = state, self.now
        if error:
            run.error = error
        if run.attempts and not run.attempts[-1].state.terminal:
            run.attempts[-1].state, run.attempts[-1].end = state, self.now
        self._changed(run)

    # -- groups -------------------------------------------------------------------------------------------------
    def _visit(self, task: Task, parent: TaskRun | None, value: str | None, values: list[str],
               may_start: bool = True, iteration: int | None = None) -> TaskRun | None:
        """The run of `task` at this position: advanced if it is a running flowable, created if allowed."""
        run = self._find(parent, task, value)
        if run is None:
            if not may_start or self.killing:
                return None
            return self._create(task, parent, value, values, iteration)
        if run.state == State.RUNNING and is_flowable(task) and not isinstance(task, fl.Subflow | fl.Pause):
            self._advance(task, run)  # subflows and pauses end by events (child ended, timer, resume)
        elif self.killing and run.state in (State.CREATED, State.PAUSED, State.RETRYING):
            self._finish(run, State.KILLED)
        return run

    def _sequential(self, tasks: list[Task], parent: TaskRun | None, value: str | None, values: list[str],
                    may_start: bool = True) -> tuple[bool, list[State]]:
        states: list[State] = []
        for task in tasks:
            if task.disabled:
                continue
            run = self._visit(task, parent, value, values, may_start)
            if run is None or not run.state.terminal:
                return False, states
            states.append(run.state)
            if run.state.failed:
                return True, states
        return True, states

    def _parallel(self, tasks: list[Task], parent: TaskRun | None, value: str | None, values: list[str],
                  limit: int) -> tuple[bool, list[State]]:
        active = [t for t in tasks if not t.disabled]
        existing = {t.id: self._find(parent, t, value) for t in active}
        failed = any(r is not None and r.state.failed for r in existing.values())
        running = sum(1 for r in existing.values() if r is not None and not r.state.terminal)
        states: list[State] = []
        done = True
        for task in active:
            may_start = not failed and (limit == 0 or running < limit)
            had_run = existing[task.id] is not None
            run = self._visit(task, parent, value, values, may_start)
            if run is None:
                done = done and failed
                continue
            if not had_run and not run.state.terminal:
                running += 1
            if run.state.terminal:
                states.append(run.state)
            else:
                done = False
        return done, states

    def _group(self, tasks: list[Task], errors: list[Task], finally_: list[Task], parent: TaskRun | None,
               value: str | None, values: list[str], body: Callable[[], tuple[bool, list[State]]] | None = None,
               ) -> State | None:
        """A body (sequential by default), then `errors` if it failed, then `finally`; the group's state."""
        done, states = body() if body else self._sequential(tasks, parent, value, values)
        if not done:
            return None
        failed = any(s.failed for s in states)
        if failed and errors and not self.killing:
            errors_done, _ = self._sequential(errors, parent, value, values)
            if not errors_done:
                return None
        if finally_:
            finally_done, finally_states = self._sequential(finally_, parent, value, values, may_start=True)
            if not finally_done:
                return None
            states += finally_states
        if State.KILLED in states:
            return State.KILLED
        return State.FAILED if any(s.failed for s in states) else worst(states)

    # -- flowables ----------------------------------------------------------------------------------------------
    def _start_flowable(self, task: Task, run: TaskRun) -> None:
        if isinstance(task, fl.Pause):
            run.state = State.PAUSED
            if task.wait is not None:
                run.next_at = self.now + task.wait
            return
        if isinstance(task, fl.Subflow):
            self.result.subflows.append((task, run))
            if not task.wait:
                self._finish(run, State.SUCCESS)
            return
        self._advance(task, run)

    def _advance(self, task: Task, run: TaskRun) -> None:
        """Move a running flowable on; finish it when its children are done."""
        try:
            state = self._resolve(task, run)
        except templating.TemplateError as exc:
            state, run.error = State.FAILED, str(exc)
            self.result.logs.append((run, "ERROR", str(exc)))
        if state is None:
            return
        if state == State.FAILED and not self.killing and self._retry_children(task, run):
            return
        if state.failed and state != State.KILLED and (task.allowFailure or isinstance(task, fl.AllowFailure)):
            state = State.WARNING
        self._finish(run, state)

    def _resolve(self, task: Task, run: TaskRun) -> State | None:
        v, vs = run.value, run.values
        if isinstance(task, fl.AllowFailure | fl.Sequential):
            return self._group(task.tasks, task.errors, task.finally_, run, v, vs)
        if isinstance(task, fl.Parallel):
            return self._group(task.tasks, task.errors, task.finally_, run, v, vs,
                               lambda: self._parallel(task.tasks, run, v, vs, task.concurrent))
        if isinstance(task, fl.If):
            branch = task.then if templating.is_truthy(self._evaluate(task.condition, run, task)) else task.else_
            return self._group(branch, task.errors, task.finally_, run, v, vs)
        if isinstance(task, fl.Switch):
            key = self._evaluate(task.value, run, task)
            key = key if isinstance(key, str) else json.dumps(key)
            if not run.outputs:
                run.outputs = {"value": key, "defaults": key not in task.cases}
                self._changed(run)
            return self._group(task.cases.get(key, task.defaults), task.errors, task.finally_, run, v, vs)
        if isinstance(task, fl.Dag):
            return self._group([], task.errors, task.finally_, run, v, vs, lambda: self._dag(task, run))
        if isinstance(task, fl.ForEach | fl.EachSequential | fl.EachParallel):
            return self._group([], task.errors, task.finally_, run, v, vs, lambda: self._loop(task, run))
        raise NotImplementedError(f"flowable {type(task).__name__}")

    def _retry_children(self, task: Task, run: TaskRun) -> bool:
        """A flowable's own retry policy: its failed children run again, as a new attempt of the flowable."""
        delay = retry_delay(task.retry, run, self.now)
        if delay is None:
            return False
        failed = [r for r in self.ex.task_runs
                  if r.parent_id == run.id and r.state == State.FAILED and not is_flowable(self.flow.task(r.task_id))]
        if not failed:
            return False
        for child in failed:
            child.state, child.next_at, child.ended = State.RETRYING, self.now + delay, None
            self._changed(child)
        run.attempts[-1].state, run.attempts[-1].end = State.FAILED, self.now
        run.attempts.append(Attempt(State.RUNNING, self.now))
        self._changed(run)
        return True

    def _evaluate(self, expression: Any, run: TaskRun, task: Task) -> Any:
        if not isinstance(expression, str):
            return expression
        return templating.evaluate(expression, self.context(run, task))

    def _dag(self, task: fl.Dag, run: TaskRun) -> tuple[bool, list[State]]:
        runs = {node.task.id: self._find(run, node.task, run.value) for node in task.tasks}
        failed = any(r is not None and r.state.failed for r in runs.values())
        running = sum(1 for r in runs.values() if r is not None and not r.state.terminal)
        done, states = True, []
        for node in task.tasks:
            deps_ok = all((d := runs.get(dep)) is not None and d.state.terminal and not d.state.failed
                          for dep in node.dependsOn)
            may_start = deps_ok and not failed and (task.concurrent == 0 or running < task.concurrent)
            existed = runs[node.task.id] is not None
            child = self._visit(node.task, run, run.value, run.values, may_start)
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

    def _loop_values(self, task: fl.ForEach | fl.EachSequential | fl.EachParallel, run: TaskRun) -> list[str]:
        raw = task.values if isinstance(task, fl.ForEach) else task.value
        values = self._evaluate(raw, run, task) if isinstance(raw, str) else raw
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

    def _loop(self, task: fl.ForEach | fl.EachSequential | fl.EachParallel, run: TaskRun) -> tuple[bool, list[State]]:
        items = self._loop_values(task, run)
        if isinstance(task, fl.EachParallel):
            return self._each_parallel(task, run, items)
        limit = task.concurrencyLimit if isinstance(task, fl.ForEach) else 1
        active = 0
        failed = False
        done, states = True, []
        for index, item in enumerate(items):
            started = any(self._find(run, t, item) is not None for t in task.tasks)
            may_start = started or (not failed and (limit == 0 or active < limit))
            if not may_start:
                done = False if not failed else done
                continue
            iteration_done, iteration_states = self._iteration(task.tasks, run, item, [*run.values, item], index)
            states += iteration_states
            if not iteration_done:
                done = False
                active += 1
            elif any(s.failed for s in iteration_states):
                failed = True
        return done, states

    def _iteration(self, tasks: list[Task], parent: TaskRun, item: str, values: list[str],
                   index: int) -> tuple[bool, list[State]]:
        states: list[State] = []
        for task in tasks:
            if task.disabled:
                continue
            child = self._visit(task, parent, item, values, iteration=index)
            if child is None or not child.state.terminal:
                return False, states
            states.append(child.state)
            if child.state.failed:
                return True, states
        return True, states

    def _each_parallel(self, task: fl.EachParallel, run: TaskRun, items: list[str]) -> tuple[bool, list[State]]:
        pairs = [(item, t) for item in items for t in task.tasks if not t.disabled]
        existing = {(item, t.id): self._find(run, t, item) for item, t in pairs}
        failed = any(r is not None and r.state.failed for r in existing.values())
        running = sum(1 for r in existing.values() if r is not None and not r.state.terminal)
        done, states = True, []
        for index, (item, child_task) in enumerate(pairs):
            had = existing[(item, child_task.id)] is not None
            may_start = not failed and (task.concurrent == 0 or running < task.concurrent)
            child = self._visit(child_task, run, item, [*run.values, item], may_start, iteration=index)
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
