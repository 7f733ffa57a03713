"""Executor plumbing: run a step under the execution's lock, persist it, then send what it dispatched.

One entry point per event: an execution is created, a task attempt ends, a timer is due, a child execution ends,
a kill or resume is asked. Each ends with `_advance`, which is safe to repeat (redelivery, two runs ending at once).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from app import runtime, templating
from app.engine import chains, child_kills, concurrency, dispatch, flow_triggers, for_each_item, retried, trigger_stops
from app.engine.liveness import group_is_alive
from app.engine.memory import Kept, memory
from app.engine.retries import next_try
from app.engine.routing import Route, route_task
from app.engine.step import Step, StepResult
from app.engine.variables import build_context, executor_functions, refuse_secrets_in_clear, without_secret_inputs
from app.model.flow import Flow, Task
from app.model.flowables import Subflow, SubflowCall, allowed
from app.model.for_each_item import ForEachItemExecutable
from app.model.inputs import resolve_inputs
from app.model.loader import parse_flow
from app.model.records import Execution, TaskRun, new_id, now
from app.model.states import State
from app.store import encryption, ends
from app.store.children import mark_told
from app.store.database import StaleRun
from app.store.rows import log_row

log = logging.getLogger("celestra.engine")


_flows_by_execution: dict[str, Flow] = {}


def flow_of(ex: Execution) -> Flow:
    """The execution's flow, parsed once per process (its source is read from the store only the first time)."""
    flow = _flows_by_execution.get(ex.id)
    if flow is None:
        flow = parse_flow(ex.flow_source or runtime.store().flow_source(ex.id), running=True)
        if len(_flows_by_execution) > 1024:
            _flows_by_execution.clear()
        _flows_by_execution[ex.id] = flow
    return flow


def flow_known(execution_id: str) -> bool:
    """Whether this process has the execution's flow parsed already (flow_of needs no source)."""
    return execution_id in _flows_by_execution


def context_factory(flow: Flow, ex: Execution) -> Callable[[TaskRun | None, Task | None], dict[str, Any]]:
    settings = runtime.settings()
    functions = executor_functions(ex)

    def make(run: TaskRun | None, task: Task | None) -> dict[str, Any]:
        return build_context(flow, ex, run, task, globals_=settings.globals, env_prefix=settings.env_vars_prefix,
                             functions=functions)

    return make


def router(flow: Flow, ex: Execution) -> Callable[[Task, TaskRun], Route]:
    settings = runtime.settings()
    make_context = context_factory(flow, ex)

    def resolve(task: Task, run: TaskRun) -> Route:
        return route_task(settings, flow, task, lambda: make_context(run, task))

    return resolve


# -- events -----------------------------------------------------------------------------------------------------
def new_execution(flow: Flow, source: str, inputs: dict[str, Any], *, revision: int | None = None,
                  labels: dict[str, str] | None = None, parent: tuple[str, str] | None = None,
                  trigger: dict[str, Any] | None = None, trigger_key: str | None = None,
                  execution_id: str | None = None) -> Execution:
    """An execution with validated inputs, not stored yet (a bad input raises before anything is written)."""
    flow.refuse_if_disabled()
    ex = Execution(id=execution_id or new_id(), namespace=flow.namespace, flow_id=flow.id, flow_revision=revision,
                   flow_source=source, labels={**flow.label_map, **(labels or {})}, trigger=trigger,
                   trigger_key=trigger_key)
    variables = {"flow": {"id": flow.id, "namespace": flow.namespace, "revision": revision},
                 "execution": {"id": ex.id}, "labels": ex.labels}  # what a dependsOn condition sees besides inputs
    ex.inputs = resolve_inputs(flow.inputs, inputs, store_file=_file_storer(flow, ex), variables=variables)
    for inp in flow.inputs:  # stored encrypted; decrypted only where a task is rendered (app/engine/variables.py)
        if getattr(inp, "type", None) == "SECRET" and isinstance(ex.inputs.get(inp.id), str):
            ex.inputs[inp.id] = encryption.encrypt(ex.inputs[inp.id])
    if parent:
        ex.parent_execution_id, ex.parent_task_run_id = parent
    _flows_by_execution[ex.id] = flow  # its steps in this process need not read the source back
    return ex


def create_execution(flow: Flow, source: str, inputs: dict[str, Any], *, revision: int | None = None,
                     labels: dict[str, str] | None = None, parent: tuple[str, str] | None = None) -> Execution:
    """Store a CREATED execution; a `start` message or call steps it later."""
    ex = new_execution(flow, source, inputs, revision=revision, labels=labels, parent=parent)
    with runtime.store().begin() as conn:
        runtime.store().insert_execution(conn, ex)
    return ex


def create_and_start(flow: Flow, source: str, inputs: dict[str, Any], *, revision: int | None = None,
                     labels: dict[str, str] | None = None, trigger: dict[str, Any] | None = None,
                     trigger_key: str | None = None, execution_id: str | None = None,
                     also: Callable[[Connection, Execution], None] | None = None) -> Execution:
    """Store an execution together with its first step, in one transaction, then send its first task runs.

    Nobody else can see the execution before the commit, so no lock is needed and nothing is read back.
    `also` writes more in the same transaction (the scheduler records the fire date with the execution)."""
    ex = new_execution(flow, source, inputs, revision=revision, labels=labels, trigger=trigger,
                       trigger_key=trigger_key, execution_id=execution_id)
    store = runtime.store()
    with store.begin() as conn:
        if also is not None:
            also(conn, ex)
        concurrency.admit(conn, flow, ex)
        result = Step(flow, ex, now(), context_factory(flow, ex), router(flow, ex), group_is_alive).run()
        if ex.state.terminal:
            ex.downstream_checked = not flow_triggers.watchers(ex)
            ends.announce(conn, ex.id)
        for run in result.dispatch:
            run.sent_at, run.sent_by = now(), os.getpid()
        store.insert_execution(conn, ex)
        store.insert_task_runs(conn, result.created)
        store.append_logs(conn, [log_row(ex.id, run, level, message) for run, level, message in result.logs])
    _after_commit(flow, ex, result, ended_now=ex.state.terminal)
    return ex


def _file_storer(flow: Flow, ex: Execution) -> Callable[[str, str, bytes], str]:
    from app.store.storage import execution_uri

    def store_file(input_id: str, filename: str, data: bytes) -> str:
        return runtime.storage().put(execution_uri(flow.namespace, flow.id, ex.id, "inputs", input_id, filename),
                                     data)

    return store_file


def start(execution_id: str) -> None:
    def mutate(event: Event) -> None:  # its first step: a flow's concurrency limit may end it at once
        concurrency.admit(event.conn, event.flow, event.ex)

    advance(execution_id, mutate, full=True)


@dataclass
class Event:
    """What an event's change (the `mutate` of `advance`) works on, inside the step's transaction."""

    conn: Connection
    ex: Execution
    flow: Flow
    kept: Kept
    touched: dict[str, TaskRun] = field(default_factory=dict)
    send_again: list[TaskRun] = field(default_factory=list)  # waiting runs whose message may never have gone
    taken: TaskRun | None = None  # claimed for this process by a step whose commit an outage hid (chains.retaken)

    def run(self, task_run_id: str) -> TaskRun | None:
        """The task run the event is about, read afresh (a kept copy may predate a claim)."""
        if task_run_id in self.kept.fresh:
            return self.kept.runs.by_id.get(task_run_id)
        fresh = runtime.store().load_task_run(self.conn, task_run_id)
        return self.kept.merge(fresh) if fresh is not None else None

    def end_waiting(self, state: State) -> None:
        """End every CREATED run in `state` at once (store.end_waiting), then read the others again: the kept copy
        may show as CREATED runs that workers claimed meanwhile (the runs this event changed already stay)."""
        store = runtime.store()
        store.end_waiting(self.conn, self.ex.id, self.ex.version, state, now())
        for fresh in store.task_runs_since(self.conn, self.ex.id, -1):
            if fresh.id not in self.touched:
                self.kept.merge(fresh)

    def touch(self, run: TaskRun) -> None:
        """`run` was changed by the event: it is written, and the step looks at what may follow from it."""
        self.touched[run.id] = run


Mutate = Callable[[Event], None]
STALE_RETRIES = 5


def advance(execution_id: str, mutate: Mutate | None = None, *, about: str | None = None,
            known: TaskRun | None = None, full: bool | None = None, take: chains.Take | None = None) -> StepResult:
    """Lock the execution, apply `mutate` (the event), step, save; then dispatch. Returns what the step did.

    `about` names the task run the event is about, read afresh with the lock (`known`: as its claim returned it,
    which saves the read when no other process wrote since). The step walks the whole execution
    when `full` (default: when there is no `mutate`: a start, a timer), else only what the runs the event touched can
    change. A write that finds a run changed since it was read (a claim in between) is redone from a fresh read.
    `take`: the process that ended the event's run claims the next runnable one instead of sending it (chains)."""
    for attempt in range(STALE_RETRIES + 1):
        try:
            return _advance(execution_id, mutate, about, known if attempt == 0 else None,
                            mutate is None if full is None else full, take)
        except StaleRun:
            if attempt == STALE_RETRIES:
                raise
            log.debug("execution %s: a task run changed while stepping; stepping again", execution_id)
    raise AssertionError("unreachable")


def _advance(execution_id: str, mutate: Mutate | None, about: str | None, known: TaskRun | None,
             full: bool, take: chains.Take | None) -> StepResult:
    store = runtime.store()
    with memory.holding(execution_id):
        with store.begin() as conn:
            kept = memory.lock_and_load(store, conn, execution_id, [about] if about else [], known)
            ex = kept.ex
            flow = flow_of(ex)
            before_state, before_fields = ex.state, _execution_fields(ex)
            event = Event(conn, ex, flow, kept)
            if mutate:
                mutate(event)
            step = Step(flow, ex, now(), context_factory(flow, ex), router(flow, ex), group_is_alive,
                        runs=kept.runs)
            result = step.run(None if full else list(event.touched.values()))
            result.dispatch += [run for run in event.send_again if run not in result.dispatch]
            taken = event.taken  # already claimed for this process (a retry after an outage), or claimed now:
            if taken is None and take is not None:
                taken = chains.take_next(take, ex, result.dispatch, step.now)
                if taken is not None:
                    result.changed.setdefault(taken.id, taken)
            for run in result.dispatch:  # the durable record that its message is due (app/engine/redelivery.py)
                run.sent_at, run.sent_by = step.now, os.getpid()
                result.changed.setdefault(run.id, run)
            created = {run.id for run in result.created}
            changed = [run for run in {**event.touched, **result.changed}.values() if run.id not in created]
            again = retried.create(conn, ex) if result.retry_execution else None
            ending = ex.state.terminal and not before_state.terminal
            if ending:
                ex.downstream_checked = not flow_triggers.watchers(ex)  # written with the end: nobody waits on it
            # Stamped with the version the lock took (lock_execution), which the execution row holds already.
            store.save_step(conn, ex, created=result.created, changed=changed,
                            log_rows=[log_row(ex.id, run, level, message) for run, level, message in result.logs],
                            execution=ending or result.execution_changed or _execution_fields(ex) != before_fields,
                            announce_end=ending)
        if taken is not None:
            result.taken = chains.for_worker(ex, taken, now())
        memory.keep(kept)
    if again is not None:
        _flows_by_execution[again.id] = flow
        log.info("execution %s ended RETRIED: its flow runs again as execution %s", ex.id, again.id)
    _after_commit(flow, ex, result, ended_now=ex.state.terminal and not before_state.terminal,
                  also_start=[again] if again is not None else [])
    return result


def _execution_fields(ex: Execution) -> tuple[Any, ...]:
    """What update_execution writes: compared before and after a step so an unchanged row is not rewritten."""
    return (ex.state, ex.inputs, ex.outputs, ex.labels, ex.error, ex.started, ex.ended, ex.downstream_checked,
            ex.sla_due, ex.final_state)


def _after_commit(flow: Flow, ex: Execution, result: StepResult, ended_now: bool,
                  also_start: list[Execution] | None = None) -> None:
    """Messages only point at rows that exist, and no second transaction waits on our lock. A message that cannot
    be sent now (the broker is away) is not lost: its run is stored as due, and the server sends it again."""
    children: list[Execution | None] = []
    for task, run in result.subflows:
        if isinstance(task, ForEachItemExecutable):
            children += start_batches(flow, ex, task, run)
        else:
            children.append(start_child(flow, ex, task, run))
    children += also_start or []
    try:
        for child in children:
            if child is not None:
                dispatch.start_execution(child.id)
        if result.dispatch:
            dispatch.send_task_runs(ex, result.dispatch)
    except Exception as exc:  # noqa: BLE001 - whatever the transport raises, the store holds what is due
        log.warning("execution %s: %d messages not sent (%s); the server sends them again", ex.id,
                    len(result.dispatch) + len(children), exc)
    for child_id in child_kills.children_to_kill(flow, list(result.changed.values())):
        advance(child_id, child_kills.kill, full=True)
    if ended_now:
        concurrency.release(flow)
        if ex.trigger_key is not None and ex.trigger_key.startswith(trigger_stops.POLLED):
            try:
                trigger_stops.stop_after(ex)
            except Exception:  # the execution has ended either way
                log.exception("stopAfter of the trigger of execution %s could not be applied", ex.id)
    if ended_now and ex.parent_execution_id:
        child_ended(runtime.store().get_execution(ex.id))
    if ended_now and not ex.downstream_checked:
        try:
            on_ended(ex)
        except Exception:  # the timer loop retries it; the execution itself has ended either way
            log.exception("flow triggers after execution %s failed; retried later", ex.id)


def on_ended(ex: Execution) -> int:
    """Start the deployed flows whose Flow trigger watches this ended execution, each once."""
    return flow_triggers.fire(ex, lambda: context_factory(flow_of(ex), ex)(None, None), create_and_start)


def retry_unchecked() -> int:
    """Offer again the ends whose flow triggers a crash left unstarted (the timer loop calls this)."""
    store = runtime.store()
    return sum(on_ended(store.get_execution(execution_id)) for execution_id in flow_triggers.unchecked_ends())


def start_child(flow: Flow, ex: Execution, task: Subflow, run: TaskRun) -> Execution | None:
    store = runtime.store()
    try:
        scope = context_factory(flow, ex)(run, task)
        child = _new_child(flow, ex, task, run, scope, _subflow(task, scope))
        with store.begin() as conn:
            store.insert_execution(conn, child)
    except Exception as exc:  # missing flow, bad inputs: the Subflow task fails, saying why
        _fail_subflow(ex.id, run.id, str(exc))
        return None
    _set_outputs(ex.id, run.id, {"executionId": child.id})
    return child


def start_batches(flow: Flow, ex: Execution, task: ForEachItemExecutable, run: TaskRun) -> list[Execution]:
    """ForEachItem: one child per batch, stored with the run's outputs in one transaction (app/engine/for_each_item)."""
    made: list[Execution] = []

    def mutate(event: Event) -> None:
        fresh = event.run(run.id)
        if fresh is None or fresh.state.terminal or "numberOfBatches" in fresh.outputs:
            return  # done already (a step repeated)
        scope = context_factory(flow, ex)(fresh, task)
        try:
            subflow = _subflow(task, scope)
            children = [_new_child(flow, ex, task, fresh, for_each_item.batch_scope(scope, uri, i), subflow,
                                   trigger=for_each_item.batch_trigger(ex, fresh, i))
                        for i, uri in enumerate(for_each_item.batches(task, fresh, event.kept.runs))]
        except Exception as exc:  # missing flow, bad inputs, unreadable splits: the task fails, saying why
            fresh.state, fresh.ended, fresh.error = allowed(task, State.FAILED), now(), str(exc)
            runtime.store().append_logs(event.conn, [log_row(ex.id, fresh, "ERROR", str(exc))])
        else:
            for child in children:
                runtime.store().insert_execution(event.conn, child)
            for_each_item.started(task, fresh, len(children))
            made[:] = children
        event.touch(fresh)

    advance(ex.id, mutate, about=run.id)
    return made


def _subflow(task: SubflowCall, scope: dict[str, Any]) -> tuple[int, str, Flow]:
    revision, source = runtime.store().get_flow(templating.render(task.namespace, scope),
                                                templating.render(task.flowId, scope), task.revision)
    return revision, source, parse_flow(source)


def _new_child(flow: Flow, ex: Execution, task: SubflowCall, run: TaskRun,
               scope: dict[str, Any], subflow: tuple[int, str, Flow],
               trigger: dict[str, Any] | None = None) -> Execution:
    revision, source, child_flow = subflow
    labels = dict(ex.labels) if task.inheritLabels else {}
    raw_labels = task.labels if isinstance(task.labels, dict) else {x["key"]: x["value"] for x in task.labels}
    labels.update({k: str(templating.render_value(v, scope)) for k, v in raw_labels.items()})
    inputs = templating.render_value(task.inputs, scope)
    refuse_secrets_in_clear(flow, scope, child_flow, inputs)
    return new_execution(child_flow, source, inputs, revision=revision,
                         labels=without_secret_inputs(flow, scope, labels), parent=(ex.id, run.id), trigger=trigger)


def _fail_subflow(execution_id: str, task_run_id: str, error: str) -> None:
    def mutate(event: Event) -> None:
        run = event.run(task_run_id)
        if run is not None and not run.state.terminal:
            run.state, run.ended, run.error = allowed(event.flow.task(run.task_id), State.FAILED), now(), error
            runtime.store().append_logs(event.conn, [log_row(execution_id, run, "ERROR", error)])
            event.touch(run)

    advance(execution_id, mutate, about=task_run_id)


def _set_outputs(execution_id: str, task_run_id: str, outputs: dict[str, Any]) -> None:
    def mutate(event: Event) -> None:
        run = event.run(task_run_id)
        if run is not None and "executionId" not in run.outputs:  # a child that ended already wrote more
            run.outputs = outputs
            event.touch(run)

    advance(execution_id, mutate, about=task_run_id)


def child_ended(child: Execution) -> None:
    """A subflow execution ended: finish the parent's Subflow task run with its outcome."""
    assert child.parent_execution_id and child.parent_task_run_id
    task_run_id = child.parent_task_run_id
    if child.state == State.RETRIED:
        return  # its retry, a new execution of the same parent task run, ends that task run

    def mutate(event: Event) -> None:
        ex, flow = event.ex, event.flow
        run = event.run(task_run_id)
        if run is None or run.state.terminal or not mark_told(event.conn, child.id):
            return
        event.touch(run)
        task = flow.task(run.task_id)
        if isinstance(task, ForEachItemExecutable):
            for_each_item.child_ended(task, run, ex, child, allowed)
            return
        assert isinstance(task, Subflow)
        state = child.state
        moment = now()
        if state.failed:
            policy = task.retry or flow.retry
            delay = next_try(policy, run, ex, moment)
            if delay is not None:
                retried = policy is not None and policy.behavior == "CREATE_NEW_EXECUTION"
                run.attempts[-1].state, run.attempts[-1].end = State.RETRIED if retried else state, moment
                run.state, run.next_at = State.RETRYING, moment + delay
                return
        if state.failed and not task.transmitFailed:
            state = State.SUCCESS
        state = allowed(task, state)
        outputs: dict[str, Any] = {"executionId": child.id, "state": child.state.value}
        error = None
        if task.outputs:
            # Rendered against the child's own variables: its task outputs, inputs, labels.
            child_flow = flow_of(child)
            scope = context_factory(child_flow, child)(None, None)
            try:
                outputs["outputs"] = without_secret_inputs(child_flow, scope,
                                                           templating.render_value(task.outputs, scope))
            except templating.TemplateError as exc:
                state, error = allowed(task, State.FAILED), f"Subflow outputs: {exc}"
                runtime.store().append_logs(event.conn, [log_row(ex.id, run, "ERROR", error)])
        elif child.outputs:
            outputs["outputs"] = child.outputs
        run.outputs, run.state, run.ended, run.error = outputs, state, now(), error
        if run.attempts:
            run.attempts[-1].state, run.attempts[-1].end = state, run.ended

    advance(child.parent_execution_id, mutate, about=task_run_id)
