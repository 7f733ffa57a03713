"""The executor step: from a flow and the task runs that exist, decide what starts next and what has ended.

`Step.run()` is deterministic given its inputs and only mutates the in-memory execution; the caller
(app/engine/events.py) persists the result inside the execution's lock and sends the messages after commit. Running the
same step twice creates nothing twice: a task run is identified by its position (parent run, task id, loop value).

A step given the runs an event changed (`touched`) walks only the flowables above them, and not even those when
nothing can follow from it: a branch of an all-at-once fan-out that ends while others still run changes nothing
but itself. So a task's end costs the same in an execution of ten runs or of ten thousand. Without `touched` (an
execution's start, a kill, a timer) the step walks the whole tree.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from app import templating
from app.engine import fan_outs, flowable_retries, flowable_timeouts, loop_until, sla, waits
from app.engine.chains import Next
from app.engine.routing import Route
from app.engine.run_index import RunIndex
from app.engine.variables import flow_outputs, secret_inputs_masker
from app.model import flowables as fl
from app.model import log_levels
from app.model.flow import Flow, Task
from app.model.for_each_item import ForEachItem, ForEachItemExecutable
from app.model.inputs import InputError
from app.model.inputs.values import InvalidValue, parse_duration
from app.model.records import Attempt, Execution, TaskRun, new_id
from app.model.states import State, worst

WAITS_FOR_EVENTS = (fl.Subflow, fl.Pause, ForEachItemExecutable)  # end by a child's end, a timer or a resume

ContextFactory = Callable[[TaskRun | None, Task | None], dict[str, Any]]


@dataclass
class StepResult:
    created: list[TaskRun] = field(default_factory=list)
    changed: dict[str, TaskRun] = field(default_factory=dict)
    dispatch: list[TaskRun] = field(default_factory=list)
    subflows: list[tuple[fl.Subflow | ForEachItemExecutable, TaskRun]] = field(default_factory=list)
    logs: list[tuple[TaskRun | None, str, str]] = field(default_factory=list)  # (run or none, level, message)
    execution_changed: bool = False
    ended: bool = False
    taken: Next | None = None  # the run claimed for the process that ended the event's run (app/engine/chains.py)
    retry_execution: bool = False  # it ends RETRIED: the caller creates the new execution (app/engine/retried.py)


allowed, is_flowable = fl.allowed, fl.is_flowable


class Step:
    def __init__(self, flow: Flow, ex: Execution, now: datetime, context: ContextFactory,
                 route: Callable[[Task, TaskRun], Route] | None = None,
                 group_alive: Callable[[str], bool] | None = None, runs: RunIndex | None = None):
        self.flow = flow
        self.ex = ex
        self.now = now
        self.context = context
        self.route = route or (lambda task, run: Route(None))
        self.group_alive = group_alive or (lambda group: True)
        self.result = StepResult()
        self.runs = runs or RunIndex(ex)
        self.by_position = self.runs.by_position
        self.killing = ex.state == State.KILLING
        self.full = True  # walk every running flowable; else only those in `dirty`
        self.dirty: set[str] = set()

    # -- entry point --------------------------------------------------------------------------------------------
    def run(self, touched: list[TaskRun] | None = None) -> StepResult:
        """Advance the execution; with `touched` (the runs the event changed), only where they can make a change."""
        ex = self.ex
        if ex.state.terminal or ex.state == State.QUEUED:  # QUEUED: waiting for its flow's concurrency limit
            return self.result
        self.full = touched is None or ex.state == State.CREATED or self.killing
        if ex.state == State.CREATED:
            ex.state, ex.started = State.RUNNING, self.now
            self.result.execution_changed = True
        waits.wake(self, self.ex.task_runs if self.full or touched is None else touched)
        if self.result.retry_execution:  # the flow runs again as a new execution (app/engine/retried.py)
            return self._stop(State.RETRIED)
        if (breached := sla.check(self)) is not None:
            return self._stop(breached)
        state = None
        if self.full or self._mark_dirty(touched or []):
            state = self._group(self.flow.tasks, self.flow.errors, self.flow.finally_, None, None, [])
            state = self._after_execution(state) if state and self.flow.afterExecution and not self.killing else state
        if self.killing:
            state = self._killed_state() if all(run.state.terminal for run in ex.task_runs) else None
        if state is not None:
            self._end(state)
        elif not self.killing and (self.full or ex.state == State.PAUSED or self._pause_changed(touched or [])):
            paused = any(run.state == State.PAUSED for run in ex.task_runs)
            wanted = State.PAUSED if paused else State.RUNNING
            if ex.state != wanted:  # Kestra shows a paused execution as PAUSED until it is resumed
                ex.state = wanted
                self.result.execution_changed = True
        self._mask_secret_inputs()
        return self.result

    def _after_execution(self, state: State) -> State | None:
        """Kestra's afterExecution: they run once the rest has ended in `state`, seeing it as `execution.state`
        (stored: workers see it too); the execution then ends in `state`, whatever they did."""
        if self.ex.final_state != state:
            self.ex.final_state, self.result.execution_changed = state, True
        return state if self._sequential(self.flow.afterExecution, None, None, [])[0] else None

    def _stop(self, state: State) -> StepResult:
        """End the execution now in `state`: what still waits or runs ends KILLED (a worker running one stops it,
        workers/execute.py KillWatch)."""
        for run in self.ex.task_runs:
            if not run.state.terminal:
                self._finish(run, State.KILLED)
        self._end(state)
        return self.result

    def _killed_state(self) -> State:
        """A kill ends the execution KILLED; a Pause whose behavior cancelled it, CANCELLED."""
        cancelled = any(run.state == State.CANCELLED and isinstance(self.flow.task(run.task_id), fl.Pause)
                        for run in self.ex.task_runs)
        return State.CANCELLED if cancelled else State.KILLED

    def _pause_changed(self, touched: list[TaskRun]) -> bool:
        return any(run.state == State.PAUSED for run in [*touched, *self.result.created, *self.result.changed.values()])

    def _mark_dirty(self, touched: list[TaskRun]) -> bool:
        """Mark the flowables above each ended touched run for a walk; True when the root must be walked too."""
        root = False
        for run in touched:
            if not run.state.terminal or self._changes_nothing(run):
                continue
            root = True
            parent = self.runs.by_id.get(run.parent_id or "")
            while parent is not None and parent.id not in self.dirty:
                self.dirty.add(parent.id)
                parent = self.runs.by_id.get(parent.parent_id or "")
        return root

    def _changes_nothing(self, run: TaskRun) -> bool:
        """A branch of an all-at-once fan-out ended while a sibling still runs: its parent has nothing to start
        (every branch started together) and cannot end yet, so nothing above it needs a walk."""
        parent = self.runs.by_id.get(run.parent_id or "")
        if parent is None or parent.state != State.RUNNING:
            return False
        task = self.flow.task(parent.task_id)
        if isinstance(task, fl.ForEach) and task.concurrencyLimit == 0:
            body = [t.id for t in task.tasks if not t.disabled]
            if run.task_id not in body or (run.task_id != body[-1] and not run.state.failed):
                return False  # the next task of its iteration starts now (or it is one of `errors`, `finally`)
        elif not ((isinstance(task, fl.Parallel | fl.EachParallel) and task.concurrent == 0)
                  and any(t.id == run.task_id for t in task.tasks)):
            return False
        # Newest first: in a fan-out, the branches that still run are mostly the last ones started.
        return any(not sibling.state.terminal and sibling is not run
                   for sibling in reversed(self.runs.children(parent.id)))

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
                ex.outputs = flow_outputs(self.flow, scope)
            except (templating.TemplateError, InputError) as exc:
                ex.error, state = f"Flow outputs: {exc}", State.FAILED
        ex.state, ex.ended = state, self.now
        self.result.execution_changed = self.result.ended = True

    # -- bookkeeping --------------------------------------------------------------------------------------------
    def _changed(self, run: TaskRun) -> None:
        if run not in self.result.created:
            self.result.changed[run.id] = run

    def find(self, parent: TaskRun | None, task: Task, value: str | None) -> TaskRun | None:
        """The run at this position; inside a LoopUntil, the current iteration's (an earlier one's is not it)."""
        run = self.by_position.get((parent.id if parent else None, task.id, value))
        if run is not None and run.iteration is not None and run.iteration != self._iteration(parent, run.iteration):
            return None
        return run

    def _iteration(self, parent: TaskRun | None, otherwise: int | None = None) -> int | None:
        if parent is None or not isinstance(self.flow.task(parent.task_id), fl.LoopUntil):
            return otherwise
        return loop_until.iteration_of(parent)

    def _create(self, task: Task, parent: TaskRun | None, value: str | None, values: list[str],
                iteration: int | None = None) -> TaskRun:
        run = TaskRun(
            id=new_id(), execution_id=self.ex.id, task_id=task.id, parent_id=parent.id if parent else None,
            value=value, values=list(values), iteration=iteration, created=self.now,
        )
        self.runs.add(run)
        self.result.created.append(run)
        if task.runIf is not None and self._skipped(task, run):
            return run
        if is_flowable(task):
            run.state, run.started = State.RUNNING, self.now
            run.attempts.append(Attempt(State.RUNNING, self.now))
            self._start_flowable(task, run)
        else:
            self._route(task, run)
        return run

    def _skipped(self, task: Task, run: TaskRun) -> bool:
        """Kestra's `runIf`, rendered when the run is created: false ends it SKIPPED (which counts as a success
        for what follows), a rendering error FAILED."""
        try:
            if templating.is_truthy(self.evaluate(task.runIf, run, task)):
                return False
        except templating.TemplateError as exc:
            self._fail(run, f"runIf: {exc}")
            return True
        self._finish(run, State.SKIPPED)
        return True

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
                self._cancel(run, State.KILLED, f"No worker of group '{route.group}' is alive: execution "
                                                "cancelled (fallback CANCEL)")
                return
            if task.timeout is not None:  # WAIT, but not longer than the task may take
                run.next_at = self.now + task.timeout
        self.result.dispatch.append(run)

    def _fail(self, run: TaskRun, message: str) -> None:
        self._finish(run, State.FAILED, message)
        self.log(run, "ERROR", message)

    def _cancel(self, run: TaskRun, state: State, message: str) -> None:
        """End `run` and the execution with it: the kill path stops what still runs."""
        self._finish(run, state)
        self.log(run, "WARN", message)
        self.ex.state, self.killing = State.KILLING, True
        self.result.execution_changed = True

    def _finish(self, run: TaskRun, state: State, error: str | None = None) -> None:
        run.state, run.ended, run.next_at = state, self.now, None  # an ended run waits for no timer
        if error:
            run.error = error
        if run.attempts and not run.attempts[-1].state.terminal:
            run.attempts[-1].state, run.attempts[-1].end = state, self.now
        self._changed(run)

    # -- groups -------------------------------------------------------------------------------------------------
    def visit(self, task: Task, parent: TaskRun | None, value: str | None, values: list[str],
               may_start: bool = True, iteration: int | None = None) -> TaskRun | None:
        """The run of `task` at this position: advanced if it is a running flowable, created if allowed."""
        run = self.find(parent, task, value)
        if run is None:
            if not may_start or self.killing:
                return None
            return self._create(task, parent, value, values, self._iteration(parent, iteration))
        if run.state == State.RUNNING and is_flowable(task) and not isinstance(task, WAITS_FOR_EVENTS) \
                and (self.full or run.id in self.dirty):
            self._advance(task, run)  # subflows and pauses end by events (child ended, timer, resume)
        elif self.killing and (run.state in (State.CREATED, State.PAUSED, State.RETRYING) or isinstance(
                task, WAITS_FOR_EVENTS) and run.state == State.RUNNING):  # its child executions: events.py kills them
            self._finish(run, State.KILLED)
        return run

    def _sequential(self, tasks: list[Task], parent: TaskRun | None, value: str | None, values: list[str],
                    may_start: bool = True) -> tuple[bool, list[State]]:
        """Each task after the previous one ended; done at the end or at the first failure. The leading tasks that
        ended without failing are remembered (`RunIndex.settled`) and not visited again: a run that ended stays
        ended (only a failed one runs again, by a flowable's retry), so a step of the 1,000th task of a sequence
        does not walk the 999 before it."""
        scope = parent.id if parent else None
        if (loop := self._iteration(parent)) is not None:
            scope = f"{scope}@{loop}"  # each LoopUntil iteration is a sequence of its own
        key = (scope, value, tasks[0].id) if tasks else None
        settled, known = self.runs.settled.get(key, (0, ())) if key else (0, ())
        last = tasks[settled - 1] if settled else None
        last_run = self.find(parent, last, value) if last is not None and not last.disabled else None
        if last_run is not None and (not last_run.state.terminal or last_run.state.failed):
            settled, known = 0, ()  # cannot happen as far as the engine goes; a wrong memory must not hide a run
        states: list[State] = list(known)
        known_count = len(states)
        done: tuple[bool, list[State]] | None = None
        for index in range(settled, len(tasks)):
            task = tasks[index]
            if not task.disabled:
                run = self.visit(task, parent, value, values, may_start)
                if run is None or not run.state.terminal:
                    done = (False, states)
                    break
                states.append(run.state)
                if run.state.failed:
                    done = (True, states)
                    break
            if index == settled:
                settled, known_count = settled + 1, len(states)
        if key is not None:
            self.runs.settled[key] = (settled, tuple(states[:known_count]))
        return done or (True, states)

    def _parallel(self, tasks: list[Task], parent: TaskRun | None, value: str | None, values: list[str],
                  limit: int) -> tuple[bool, list[State]]:
        active = [t for t in tasks if not t.disabled]
        existing = {t.id: self.find(parent, t, value) for t in active}
        failed = any(r is not None and r.state.failed for r in existing.values())
        running = sum(1 for r in existing.values() if r is not None and not r.state.terminal)
        states: list[State] = []
        done = True
        for task in active:
            may_start = not failed and (limit == 0 or running < limit)
            had_run = existing[task.id] is not None
            run = self.visit(task, parent, value, values, may_start)
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
            wait = task.wait
            if isinstance(wait, str):  # a templated pauseDuration, rendered once, when the pause starts
                try:
                    wait = parse_duration(templating.render(wait, self.context(run, task)))
                except (templating.TemplateError, InvalidValue) as exc:
                    self._fail(run, f"pauseDuration: {exc}")
                    return
            run.state = State.PAUSED
            if wait is not None or task.timeout is not None:
                run.next_at = self.now + (wait or task.timeout or timedelta())
            return
        if isinstance(task, fl.LoopUntil):
            loop_until.start(run)
        if isinstance(task, ForEachItemExecutable):
            self.result.subflows.append((task, run))  # its children are made after commit (events.start_batches)
            return
        if isinstance(task, fl.Subflow):
            self.result.subflows.append((task, run))
            if not task.wait:
                self._finish(run, State.SUCCESS)
            return
        self._advance(task, run)

    def _advance(self, task: Task, run: TaskRun) -> None:
        """Move a running flowable on; finish it when its children are done."""
        flowable_timeouts.arm(self, task, run)
        try:
            state = self._resolve(task, run)
        except templating.TemplateError as exc:
            state, run.error = State.FAILED, str(exc)
            self.log(run, "ERROR", str(exc))
        if state is None and self.killing and all(c.state.terminal for c in self.runs.children(run.id)):
            state = State.KILLED  # being killed, it starts nothing more: once what it started has ended, so has it
        if state is None:
            return
        if state == State.FAILED and not self.killing and flowable_retries.retry(self, task, run):
            return
        self._finish(run, allowed(task, state))

    def _resolve(self, task: Task, run: TaskRun) -> State | None:
        v, vs = run.value, run.values
        if isinstance(task, fl.AllowFailure | fl.Sequential | ForEachItem):
            return self._group(task.tasks, task.errors, task.finally_, run, v, vs)
        if isinstance(task, fl.Parallel):
            return self._group(task.tasks, task.errors, task.finally_, run, v, vs,
                               lambda: self._parallel(task.tasks, run, v, vs, task.concurrent))
        if isinstance(task, fl.If):
            branch = task.then if templating.is_truthy(self.evaluate(task.condition, run, task)) else task.else_
            return self._group(branch, task.errors, task.finally_, run, v, vs)
        if isinstance(task, fl.Switch):
            key = self.evaluate(task.value, run, task)
            key = key if isinstance(key, str) else json.dumps(key)
            if not run.outputs:
                run.outputs = {"value": key, "defaults": key not in task.cases}
                self._changed(run)
            return self._group(task.cases.get(key, task.defaults), task.errors, task.finally_, run, v, vs)
        if isinstance(task, fl.Dag):
            return self._group([], task.errors, task.finally_, run, v, vs, lambda: fan_outs.dag(self, task, run))
        if isinstance(task, fl.LoopUntil):
            return self._group([], task.errors, task.finally_, run, v, vs, lambda: loop_until.body(self, task, run))
        if isinstance(task, fl.ForEach | fl.EachSequential | fl.EachParallel):
            return self._group([], task.errors, task.finally_, run, v, vs, lambda: fan_outs.loop(self, task, run))
        raise NotImplementedError(f"flowable {type(task).__name__}")

    # what app/engine/loop_until.py, waits.py and flowable_retries.py need of the step
    sequence, changed, finish, fail, cancel = _sequential, _changed, _finish, _fail, _cancel

    def log(self, run: TaskRun | None, level: str, message: str) -> None:
        if run is None or log_levels.at_least(level, self.flow.task(run.task_id).logLevel):  # the task's logLevel
            self.result.logs.append((run, level, message))

    def evaluate(self, expression: Any, run: TaskRun, task: Task) -> Any:
        if not isinstance(expression, str):
            return expression
        return templating.evaluate(expression, self.context(run, task))
