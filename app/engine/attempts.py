"""The events of one attempt on a worker: claimed, ended, or lost with its worker (sent again)."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from app import runtime
from app.engine import chains, events
from app.engine.retries import next_try
from app.engine.step import StepResult
from app.model.records import Attempt, Execution, TaskRun, now
from app.model.states import State


def claim(execution_id: str, task_run_id: str, worker: str, groups: set[str] | None = None,
          token: str | None = None) -> tuple[Execution, TaskRun] | None:
    """Mark a CREATED run RUNNING for this worker; None if it is not CREATED any more (redelivery, kill). Called
    again with the same `token` after an outage, it recognises a claim of its own whose answer was lost."""
    store = runtime.store()
    # No execution lock and no transaction: the conditional UPDATE alone decides which of two deliveries wins, and
    # reads the execution (is it being killed?) in the same statement. When it claims nothing, the execution is
    # read before the other ways to the run, so that an outage after one of them cannot strand it: the write is
    # the last statement, and a retry after it failed finds the run as it was.
    moment = now()
    with store.single_statements() as conn:
        claimed = store.claim_with_execution(conn, execution_id, task_run_id, worker, groups,
                                             runtime.settings().default_queue, token,
                                             with_source=not events.flow_known(execution_id))
        if claimed is not None:
            ex, run = claimed
        else:
            ex = store.load_execution(conn, execution_id, with_runs=False)
            found = (store.claimed_by(conn, task_run_id, token) if token else None) \
                or _take_over(conn, task_run_id, worker)
            if found is None:
                return None
            run = found
    # The attempt is stored when it ends (finish_attempt); until then it lives here.
    run.attempts.append(Attempt(State.RUNNING, moment))
    if ex.state.terminal or ex.state == State.KILLING:
        finish_attempt(execution_id, task_run_id, State.KILLED, {}, None, [], attempt_start=moment)
        return None
    return ex, run


def _take_over(conn: Connection, task_run_id: str, worker: str) -> TaskRun | None:
    """The run is RUNNING on this very worker, in a pool process that died (killed, out of memory): Celery gives its
    message back (task_reject_on_worker_lost), and nobody else would ever finish the run, since the worker itself
    still beats. The lost attempt is recorded and this process runs the next one."""
    store = runtime.store()
    run = store.load_task_run(conn, task_run_id)
    if run is None or run.state != State.RUNNING or run.worker != worker or run.worker_pid in (None, os.getpid()) \
            or runs_for_this_worker(run.worker_pid):
        return None
    moment = now()
    message = f"The process of worker {worker} running this task ended abruptly; it runs again"
    store.append_logs(conn, [events.log_row(run.execution_id, run, "WARN", message)])
    return store.take_over(conn, run, Attempt(State.KILLED, run.started, moment))


def runs_for_this_worker(pid: int | None) -> bool:
    """Whether `pid` is a live process of this worker instance: its main process, or a pool process of it. A pool
    process left running by an earlier instance that was killed (an orphan) is not: nothing would ever deliver
    its outcome or notice it hang, so its run is taken over like a dead process's."""
    if pid is None or not process_alive(pid):
        return False
    ours = {os.getpid(), os.getppid()}  # called in the main process (heartbeat) or in a pool process
    if pid in ours:
        return True
    stat = _stat(pid)
    return stat is None or int(stat[1]) in ours  # cannot tell: count it as alive, as before


def process_alive(pid: int | None) -> bool:
    """Whether `pid` is a live process of this host (a zombie, dead but not yet reaped, is not)."""
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = _stat(pid)
    return stat is None or stat[0] != "Z"


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state, ppid, ...); None when they cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        int(fields[1])
    except (OSError, IndexError, ValueError):
        return None
    return fields


def finish_attempt(execution_id: str, task_run_id: str, state: State, outputs: dict[str, Any],
                   error: str | None, logs: list[dict[str, Any]], *, attempt_start: datetime,
                   labels: dict[str, str] | None = None, exit_state: State | None = None,
                   worker: str | None = None, claimed: TaskRun | None = None,
                   retry_of: datetime | None = None, take: chains.Take | None = None,
                   claim_token: str | None = None) -> StepResult:
    """Record one attempt's outcome (with its last logs) and step the execution in the same transaction; `claimed` is
    the run as its claim returned it (app/engine/memory.py: it may save a read). `retry_of`: when the first try of
    this call began, if an outage interrupted it. `take`: this process offers to run the next run (chains).
    `claim_token`: the claim this attempt ran under; a run claimed again since (resent, or retried at once and
    chained to this very process) is another attempt, which this outcome must not end."""

    def mutate(event: events.Event) -> None:
        ex, flow = event.ex, event.flow
        runtime.store().append_logs(event.conn, logs)
        run = event.run(task_run_id)
        if run is None or run.state != State.RUNNING or (worker is not None and run.worker != worker) or \
                (claim_token is not None and run.claim_token != claim_token):
            if retry_of is not None:
                # Maybe the first try committed, and the outage hid it (and stopped its messages): the runs that
                # step made runnable are sent now (a copy of a message that did go out is harmless), and the one
                # it claimed for this process is run.
                event.send_again = [r for r in ex.task_runs if r.state == State.CREATED and r.created >= retry_of]
                event.taken = chains.retaken(take, ex.task_runs) if take is not None else None
            return  # already folded in, or resent to another worker after this one was declared dead
        event.touch(run)
        moment = now()
        final = state
        run.attempts.append(Attempt(state, attempt_start, moment))
        task = flow.task(run.task_id)
        policy = task.retry or flow.retry
        if state == State.FAILED and ex.state != State.KILLING:
            delay = next_try(policy, run, ex, moment)
            if delay is not None:
                run.state, run.next_at, run.error = State.RETRYING, moment + delay, error
                if policy is not None and policy.behavior == "CREATE_NEW_EXECUTION":
                    run.attempts[-1].state = State.RETRIED  # the wait ends in a new execution (waits.wake)
                return
            if task.allowFailure:
                final = State.WARNING
        if final == State.SUCCESS and len(run.attempts) > 1 and policy and policy.warningOnRetry:
            final = State.WARNING
        if final == State.WARNING and task.allowWarning:
            final = State.SUCCESS
        run.state, run.ended, run.outputs, run.error = final, moment, outputs, error
        if labels:
            ex.labels = {**ex.labels, **labels}
        if exit_state is not None:
            _exit(event, exit_state, moment)

    return events.advance(execution_id, mutate, about=task_run_id, known=claimed, take=take)


def _exit(event: events.Event, state: State, moment: datetime) -> None:
    """The Exit task: end the execution now in `state`; what has not run yet never will."""
    event.end_waiting(State.KILLED if state == State.KILLED else state)
    for run in event.ex.task_runs:
        if not run.state.terminal:
            run.state, run.ended = (State.KILLED if state == State.KILLED else state), moment
            event.touch(run)
    event.ex.state, event.ex.ended = state, moment


def resend(execution_id: str, task_run_id: str, dead_worker: str, dead_pid: int | None = None) -> None:
    """The worker running this task run died (or, with `dead_pid`, the one process of it that claimed the run):
    record the lost attempt and send the run again."""

    def mutate(event: events.Event) -> None:
        run = event.run(task_run_id)
        if run is None or run.state != State.RUNNING or run.worker != dead_worker or \
                (dead_pid is not None and run.worker_pid != dead_pid):
            return
        event.touch(run)
        moment = now()
        run.attempts.append(Attempt(State.KILLED, run.started, moment))
        message = (f"Worker {dead_worker} stopped beating while running this task; it is sent again"
                   if dead_pid is None else
                   f"The process of worker {dead_worker} running this task ended abruptly; it is sent again")
        runtime.store().append_logs(event.conn, [events.log_row(event.ex.id, run, "WARN", message)])
        # RETRYING due now: this very step turns it back into CREATED and dispatches it.
        run.state, run.worker, run.worker_pid, run.next_at = State.RETRYING, None, None, moment

    events.advance(execution_id, mutate, about=task_run_id)
