"""Run one attempt of one task run on this worker: render, run the plugin, collect outputs and logs."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from socket import gethostname
from typing import Any

from celery.worker import state as worker_state

from app import runtime, templating
from app.engine import attempts, chains, events
from app.engine.variables import LazyOutputs, build_context, executor_functions
from app.errors import ConfigError, NotFoundError, TaskFailure, TaskKilled
from app.model import log_levels
from app.model.flow import Flow, Task
from app.model.flowables import WorkingDirectory, allowed
from app.model.inputs.values import format_duration
from app.model.records import Attempt, Execution, TaskRun, new_id, now
from app.model.states import State
from app.store import encryption
from app.store.database import Store
from app.store.outage import is_outage, until_stored
from app.store.storage import NamespaceStorage, StorageError, execution_uri
from workers import files, wd_cache
from workers.plugin_api import AttemptInfo, RunContext, RunnableTask
from workers.secrets import SecretResolver

log = logging.getLogger("celestra.worker")
FLUSH_EVERY = 0.1  # seconds: how stale a live log line may get before it is written
KILL_POLL = 0.25  # seconds between checks of the execution's state while a task runs


@dataclass
class Outcome:
    state: State
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    exit_state: State | None = None


class LogBuffer:
    """Collects log rows, masks secrets, writes them in batches so a chatty task does not cost a commit a line."""

    def __init__(self, ex: Execution, run: TaskRun, secrets: SecretResolver, min_level: str | None = None):
        self.ex, self.run, self.secrets = ex, run, secrets
        self.min_level = min_level
        self.rows: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.writing = threading.Lock()  # held while a batch is written: take() waits for it, keeping order
        self.timer: threading.Timer | None = None

    def __call__(self, level: str, message: str) -> None:
        level = "WARN" if level == "WARNING" else level
        if not log_levels.at_least(level, self.min_level):
            return  # the task's logLevel filters it out
        with self.lock:
            self.rows.append(events.log_row(self.ex.id, self.run, level, self.secrets.mask(message)))
            if self.timer is None:  # lines within FLUSH_EVERY of each other are written together
                self.timer = threading.Timer(FLUSH_EVERY, self.flush)
                self.timer.daemon = True
                self.timer.start()

    def flush(self) -> None:
        with self.writing:
            with self.lock:
                rows, self.rows, self.timer = self.rows, [], None
            if not rows:
                return
            try:
                runtime.store().append_logs(None, rows)
            except Exception:  # the store is briefly unreachable: keep the lines for the final write
                log.warning("could not write %d log lines yet", len(rows), exc_info=True)
                with self.lock:
                    self.rows = rows + self.rows

    def take(self) -> list[dict[str, Any]]:
        """What is left to write, to go with the attempt's outcome in one transaction."""
        with self.writing, self.lock:
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            rows, self.rows = self.rows, []
        return rows


class KillWatch:
    """Sets the kill event when the execution is being killed, the task run was ended by the executor (the timeout
    of a flowable above it), the task's timeout passes, or `enclosing` is set (the kill event of the
    WorkingDirectory a child runs in: its timeout stops the child that is running)."""

    def __init__(self, execution_id: str, task_run_id: str, kill_event: threading.Event, timeout: float | None,
                 enclosing: threading.Event | None = None):
        self.execution_id, self.task_run_id, self.kill_event = execution_id, task_run_id, kill_event
        self.enclosing = enclosing
        self.deadline = time.monotonic() + timeout if timeout else None
        self.timed_out = False
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True, name="celestra-killwatch")
        self.thread.start()

    def _watch(self) -> None:
        while not self.done.wait(KILL_POLL if self.deadline is None else
                                 max(0.0, min(KILL_POLL, self.deadline - time.monotonic()))):
            if self.deadline is not None and time.monotonic() >= self.deadline:
                self.timed_out = True
                self.kill_event.set()
                return
            if self.enclosing is not None and self.enclosing.is_set():
                self.kill_event.set()
                return
            try:
                state, run_state = runtime.store().states_of(self.execution_id, self.task_run_id)
            except Exception:  # the store is briefly unreachable: keep running, check again
                continue
            # killed, or ended by an sla, a retry, an Exit task; or this run ended KILLED by the executor
            if state == State.KILLING or state.terminal or (run_state is not None and run_state.terminal):
                self.kill_event.set()
                return

    def stop(self) -> None:
        self.done.set()


def run_task_run(execution_id: str, task_run_id: str, worker: str | None = None,
                 groups: set[str] | None = None) -> list[str]:
    """The whole life of one attempt on this worker, and of the runs that follow it here (app/engine/chains.py);
    returns those of them that FAILED, named (what Flower shows of the message). Safe to call twice: only a
    CREATED run is claimed, and only when its stored group is one of `groups` (None: any)."""
    worker = worker or gethostname()
    settings = runtime.settings()
    token = new_id()  # the same through retries: a claim whose answer an outage hid is still this one's
    claimed = until_stored(f"claim of task run {task_run_id}",
                           lambda: attempts.claim(execution_id, task_run_id, worker, groups, token),
                           settings.store_retry_for)
    if claimed is None:
        return []
    ex, run = claimed
    stored = replace(run, attempts=run.attempts[:-1])  # the row as claimed (the running attempt lives here)
    chain_until = time.monotonic() + settings.chain_inline_for
    served = frozenset(groups) if groups is not None else None

    def offer() -> chains.Take | None:  # asked when an attempt has ended
        if time.monotonic() >= chain_until or _shutting_down():
            return None
        return chains.Take(worker, served, settings.default_queue, new_id(), os.getpid())

    next_one: chains.Next | None = chains.Next(ex, run, stored)
    failed: list[str] = []
    while next_one is not None:
        next_one = run_claimed(*next_one, worker, offer, failed)
    return failed


def _shutting_down() -> bool:
    """Celery's own test (0 means a warm shutdown); set in the process that consumes, so a prefork pool process
    never sees it and stops chaining at the end of its time instead."""
    return any(flag is not None and flag is not False
               for flag in (worker_state.should_stop, worker_state.should_terminate))


def run_claimed(ex: Execution, run: TaskRun, stored: TaskRun, worker: str,
                offer: Callable[[], chains.Take | None] = lambda: None,
                failed: list[str] | None = None) -> chains.Next | None:
    """Run the attempt of `run` this process claimed, and store its outcome (named in `failed` if it FAILED); when
    `offer` (asked once the attempt has ended) offers to take the next run, the run the step claimed for this
    process, if any."""
    retry_for = runtime.settings().store_retry_for
    if ex.state.terminal or ex.state == State.KILLING:  # taken again after an outage, the execution being killed
        until_stored(f"outcome of task run {run.id}", lambda: attempts.finish_attempt(
            ex.id, run.id, State.KILLED, {}, None, [], attempt_start=run.attempts[-1].start or run.created,
            worker=worker, claim_token=stored.claim_token), retry_for)
        return None
    # From the claim on, the run is this process's: nothing read before the outcome is stored may give up on an
    # outage, or the message would be acknowledged with the run RUNNING here and nobody to end it.
    flow = until_stored(f"flow of task run {run.id}", lambda: events.flow_of(ex), retry_for)
    task = flow.task(run.task_id)
    if run.parent_id:  # `parents`: the enclosing runs, not the whole execution (outputs are read when used)
        ex.task_runs = until_stored(f"parents of task run {run.id}", lambda: _ancestors(run), retry_for)
    secrets = SecretResolver(runtime.settings().secrets_prefix)
    logs = LogBuffer(ex, run, secrets, task.logLevel)
    try:
        for inp in flow.inputs:
            if getattr(inp, "type", None) == "SECRET" and isinstance(ex.inputs.get(inp.id), str):
                secrets.remember(encryption.decrypt(ex.inputs[inp.id]))
    except ConfigError as exc:  # this worker cannot read the execution's SECRET inputs: the run fails, saying why
        outcome = Outcome(State.FAILED, error=str(exc))
    else:
        outcome = execute(flow, ex, run, task, logs, secrets, worker=worker)
    if outcome.error:
        logs("ERROR", outcome.error)
    if outcome.state == State.FAILED and failed is not None:
        failed.append(f"task {run.task_id} ({run.id}) of execution {ex.id}: {outcome.error or 'FAILED'}")
    rows = logs.take()
    first_try: list[datetime] = []
    take = offer()  # decided once: a retry after an outage looks for what its first try may have taken

    def finish() -> chains.Next | None:
        retry_of = first_try[0] if first_try else None
        first_try.append(now())
        return attempts.finish_attempt(
            ex.id, run.id, outcome.state, outcome.outputs, outcome.error, rows,
            attempt_start=run.attempts[-1].start or run.created, labels=outcome.labels,
            exit_state=outcome.exit_state, worker=worker, claimed=None if retry_of else stored,
            retry_of=retry_of, take=take, claim_token=stored.claim_token).taken

    # The outcome stays here until it is stored: a database outage delays it, never loses it.
    return until_stored(f"outcome of task run {run.id}", finish, retry_for)


def _ancestors(run: TaskRun) -> list[TaskRun]:
    with runtime.store().reads() as conn:
        return runtime.store().ancestors(conn, run)


def make_context(flow: Flow, ex: Execution, run: TaskRun, task: Task, logs: LogBuffer,
                 secrets: SecretResolver, working_dir: Path | None, outcome: Outcome) -> RunContext:
    settings = runtime.settings()
    store = runtime.store()
    functions = executor_functions(ex, retry_for=settings.store_retry_for)
    functions["secret"] = secrets

    files = NamespaceStorage(runtime.storage(), ex.namespace)  # a task sees its own namespace's files only

    def read(uri: str) -> str:
        try:
            return files.get(uri).decode()
        except StorageError as exc:
            raise templating.TemplateError(f"read(): {exc}") from None

    functions["read"] = read
    retry_for = settings.store_retry_for

    def load_runs() -> list[TaskRun]:
        def load() -> list[TaskRun]:
            with store.reads() as conn:
                return store.load_task_runs(conn, ex.id)

        return until_stored(f"outputs for task run {run.id}", load, retry_for)

    lazy = LazyOutputs(load_runs)  # read when a template uses `outputs`: most tasks never do
    variables = build_context(flow, ex, run, task, globals_=settings.globals, env_prefix=settings.env_vars_prefix,
                              functions=functions, outputs=lazy)
    if working_dir is not None:
        variables["workingDir"] = str(working_dir)

    def store_output(name: str, data: bytes) -> str:
        uri = execution_uri(ex.namespace, ex.flow_id, ex.id, "tasks", task.id, run.id, name)
        return runtime.storage().put(uri, data)

    def set_external_id(external_id: str) -> None:
        # Saved at once: cancel, timeout and a restarted worker must be able to find what was started. While the
        # database is away it is saved as soon as it is back, and the task goes on meanwhile.
        run.external_id = external_id
        try:
            store.set_external_id(run.id, external_id)
        except Exception as exc:
            if not is_outage(exc):
                raise
            threading.Thread(target=until_stored, daemon=True, name="celestra-external-id",
                             args=(f"external id of task run {run.id}",
                                   lambda: store.set_external_id(run.id, external_id), retry_for)).start()

    attempt = len(run.attempts)
    return RunContext(
        variables=variables, log=logs, storage=files, kv=KeyValues(store, settings.store_retry_for),
        attempt=AttemptInfo(
            name=f"celestra-{run.id}-{attempt}".lower(),
            labels={"celestra.execution": ex.id, "celestra.taskrun": run.id, "celestra.attempt": str(attempt)}),
        store_output=store_output, working_dir=working_dir,
        set_labels=outcome.labels.update,
        set_state=lambda state: setattr(outcome, "exit_state", State(state)),
        set_external_id=set_external_id, executions=_Reads(store),
    )


@dataclass(frozen=True)
class _Reads:
    """The plugin API's ExecutionReader on the store."""

    store: Store

    def flow_of(self, execution_id: str) -> tuple[str, str] | None:
        try:
            ex = self.store.get_execution(execution_id, with_runs=False)
        except NotFoundError:
            return None
        return ex.namespace, ex.flow_id

    def rows(self, execution_id: str) -> list[dict[str, Any]]:
        return self.store.logs(execution_id)

    def execution(self, execution_id: str) -> Execution | None:
        try:
            return self.store.get_execution(execution_id)
        except NotFoundError:
            return None


@dataclass(frozen=True)
class KeyValues:
    """The store's KV table as the plugin API's KeyValueStore (waiting for the database through an outage)."""

    store: Store
    retry_for: float

    def get(self, namespace: str, key: str) -> Any:
        return until_stored("key-value read", lambda: self.store.kv_get(namespace, key), self.retry_for)

    def put(self, namespace: str, key: str, value: Any, ttl: timedelta | None = None) -> None:
        until_stored("key-value write", lambda: self.store.kv_put(namespace, key, value, ttl), self.retry_for)

    def delete(self, namespace: str, key: str) -> bool:
        return until_stored("key-value delete", lambda: self.store.kv_delete(namespace, key), self.retry_for)

    def keys(self, namespace: str, prefix: str = "") -> list[str]:
        return until_stored("key-value listing", lambda: self.store.kv_keys(namespace, prefix), self.retry_for)


def execute(flow: Flow, ex: Execution, run: TaskRun, task: Task, logs: LogBuffer, secrets: SecretResolver,
            working_dir: Path | None = None, worker: str | None = None,
            enclosing: threading.Event | None = None) -> Outcome:
    outcome = Outcome(State.SUCCESS)
    try:
        ctx = make_context(flow, ex, run, task, logs, secrets, working_dir, outcome)
    except (ConfigError, templating.TemplateError) as exc:  # e.g. SECRET inputs it cannot decrypt: fail the run
        return Outcome(State.FAILED, error=secrets.mask(str(exc)))
    if working_dir is not None and task.runIf is not None:  # a WorkingDirectory's child: no step renders it
        try:
            if not templating.is_truthy(ctx.render(task.runIf)):
                return Outcome(State.SKIPPED)
        except templating.TemplateError as exc:
            return Outcome(State.FAILED, error=secrets.mask(f"runIf: {exc}"))
    timeout = task.timeout.total_seconds() if task.timeout else None
    watch = KillWatch(ex.id, run.id, ctx.kill_event, timeout, enclosing)
    try:
        if isinstance(task, WorkingDirectory):
            outcome = run_working_directory(flow, ex, run, task, ctx, secrets, outcome, worker or gethostname())
        elif isinstance(task, RunnableTask):
            outcome.outputs = task.run(ctx) or {}
            if ctx.warning:
                outcome.state = State.WARNING
        else:
            raise TaskFailure(f"Task type {task.type} cannot run on a worker")
        if ctx.kill_event.is_set() and watch.timed_out:
            raise TaskKilled("timeout")
    except TaskKilled:
        if watch.timed_out:
            assert task.timeout is not None  # only a task with a timeout times out
            outcome.state, outcome.error = State.FAILED, f"Task '{task.id}' timed out after " \
                                                         f"{format_duration(task.timeout)}"
        else:
            outcome.state = State.KILLED
    except (TaskFailure, templating.TemplateError) as exc:
        outcome.state, outcome.error = State.FAILED, secrets.mask(str(exc))
    except Exception as exc:  # a bug in a plugin must fail the task run, not lose it
        log.debug("task %s crashed", task.id, exc_info=True)
        outcome.state = State.FAILED
        outcome.error = secrets.mask(f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}")
    finally:
        watch.stop()
    # At rest, a secret is masked wherever the attempt put it (a downstream task reads it with secret() again).
    outcome.outputs = secrets.mask_value(outcome.outputs)
    outcome.labels = secrets.mask_value(outcome.labels)
    return outcome


def run_working_directory(flow: Flow, ex: Execution, parent: TaskRun, task: WorkingDirectory, ctx: RunContext,
                          secrets: SecretResolver, outcome: Outcome, worker: str) -> Outcome:
    """Children run here, one after another, in one temporary folder; each gets its own task run.
    Like a Sequential: the first failure stops `tasks`, then `errors` run, then `finally`. The folder starts with
    the namespace and input files; what matches `outputFiles` is kept when the children are done."""
    folder = Path(tempfile.mkdtemp(prefix="celestra-wd-"))
    cached = wd_cache.cache_uri(ex.namespace, ex.flow_id, task.id, parent.value) if task.cache else None
    try:
        paths = {"workingDir": str(folder)}
        if task.cache and cached:
            restored = wd_cache.restore(cached, task.cache, folder)
            if restored:
                ctx.log("INFO", f"Cache restored: {len(restored)} file(s)")
        files.stage(ctx, folder, task.inputFiles, task.namespaceFiles, paths)
        stop = ctx.kill_event  # the WorkingDirectory's own timeout or kill: the running child stops, no other starts
        states = _run_children(flow, ex, parent, task.tasks, secrets, folder, worker, stop, stop_on_failure=True)
        failed = any(state.failed for state in states)
        if failed:
            _run_children(flow, ex, parent, task.errors, secrets, folder, worker, stop, stop_on_failure=True)
        _run_children(flow, ex, parent, task.finally_, secrets, folder, worker, stop, stop_on_failure=False)
        outcome.state = State.FAILED if failed else (State.WARNING if State.WARNING in states else State.SUCCESS)
        if task.cache and cached and not failed:  # a failed run's files are not worth keeping
            wd_cache.save(cached, task.cache, folder, [ctx.render_str(p, paths) for p in task.cache.patterns])
        if task.outputFiles:
            outcome.outputs["outputFiles"] = files.collect(ctx, folder, [ctx.render_str(p, paths)
                                                                         for p in task.outputFiles])
        return outcome
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run_children(flow: Flow, ex: Execution, parent: TaskRun, children: list[Task], secrets: SecretResolver,
                  folder: Path, worker: str, stop: threading.Event, stop_on_failure: bool) -> list[State]:
    store = runtime.store()
    states: list[State] = []
    for child in children:
        if child.disabled:
            continue
        if stop.is_set():
            break
        started = now()
        with store.begin() as conn:
            # A new attempt of the WorkingDirectory runs its children again, as new attempts of the same runs.
            child_run = store.run_at(conn, ex.id, parent.id, child.id, parent.value)
            if child_run is None:
                child_run = TaskRun(id=new_id(), execution_id=ex.id, task_id=child.id, parent_id=parent.id,
                                    value=parent.value, values=parent.values, state=State.RUNNING, worker=worker,
                                    worker_pid=None,  # it runs inside its WorkingDirectory's attempt
                                    started=started, attempts=[Attempt(State.RUNNING, started)])
                store.write_runs(conn, ex.id, created=[child_run])
            else:
                child_run.state, child_run.worker, child_run.started = State.RUNNING, worker, started
                child_run.ended, child_run.error, child_run.outputs = None, None, {}
                child_run.attempts.append(Attempt(State.RUNNING, started))
                store.write_runs(conn, ex.id, changed=[child_run])
        ex.task_runs.append(child_run)
        child_logs = LogBuffer(ex, child_run, secrets, child.logLevel)
        result = execute(flow, ex, child_run, child, child_logs, secrets, working_dir=folder, worker=worker,
                         enclosing=stop)
        if result.error:
            child_logs("ERROR", result.error)
        state = allowed(child, result.state)
        child_run.state, child_run.ended, child_run.outputs, child_run.error = state, now(), result.outputs, \
            result.error
        child_run.attempts[-1].state, child_run.attempts[-1].end = state, child_run.ended
        with store.begin() as conn:
            store.write_runs(conn, ex.id, changed=[child_run])
            store.append_logs(conn, child_logs.take())
        states.append(state)
        if state.failed and stop_on_failure:
            break
    return states
