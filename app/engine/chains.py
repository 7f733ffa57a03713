"""A worker that ends a task run goes on with the run that follows it, itself, when it serves that run's queue.

In a chain of tasks (a sequential flow, a branch of a Parallel), every end makes the next run runnable. Sending it
through the broker costs a publish, a delivery, the worker's receipt and a claim, for a run this very process is
about to be free for. Instead, the step that ends a run claims the next one for the process that ended it, in the
same transaction (RUNNING, this worker, this process, a fresh claim token), and sends no message: the worker runs
it straight away. Nothing else changes: a run claimed this way is RUNNING on a live process like any claimed run,
so a kill reaches it the same way, and if the process dies its heartbeat (or the server, if the whole worker dies)
sends it again.

A process chains for at most `chain_inline_for` seconds from the message it received, then hands back to the broker,
so the other executions queued behind get their turn (0 turns chaining off). It takes one run per step: the other
runs a step makes runnable (the branches of a Parallel) are sent, so that other workers run them beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import NamedTuple

from app.model.records import Attempt, Execution, TaskRun
from app.model.states import State


@dataclass(frozen=True)
class Take:
    """The process that ended the event's run, offering to run the next one."""

    worker: str
    groups: frozenset[str] | None  # the queues it serves; None: all of them (the embedded worker)
    default_queue: str
    token: str  # the claim token it writes: a retry after an outage recognises its own claim by it
    pid: int  # the process

    def serves(self, run: TaskRun) -> bool:
        if self.groups is None:
            return True
        return run.worker_group in self.groups if run.worker_group else self.default_queue in self.groups


def take_next(take: Take, ex: Execution, dispatch: list[TaskRun], moment: datetime) -> TaskRun | None:
    """Claim for `take` the first run of `dispatch` (the runs a step is about to send) that it serves, and remove it
    from `dispatch`; None when there is none or the execution is not running (being killed, ended)."""
    if ex.state != State.RUNNING:
        return None
    run = next((r for r in dispatch if r.state == State.CREATED and take.serves(r)), None)
    if run is None:
        return None
    dispatch.remove(run)
    run.state, run.worker, run.worker_pid, run.claim_token = State.RUNNING, take.worker, take.pid, take.token
    run.next_at = None
    run.started = run.started or moment
    return run


def retaken(take: Take, runs: list[TaskRun]) -> TaskRun | None:
    """After an outage hid a step's commit: the run that step claimed for `take`, if it did."""
    return next((r for r in runs if r.state == State.RUNNING and r.claim_token == take.token), None)


class Next(NamedTuple):
    """What the worker runs next: the execution without its runs, the run with its running attempt, and the run as
    stored (its end saves a read with it, as with a claim's answer)."""

    ex: Execution
    run: TaskRun
    stored: TaskRun


def for_worker(ex: Execution, run: TaskRun, moment: datetime) -> Next:
    """Copies, made while the step still holds the execution in this process: the step's own objects are kept for
    the next step. What the worker changes (attempts, labels, inputs) is copied down to its elements."""
    stored = replace(run, attempts=[replace(a) for a in run.attempts])
    running = replace(run, attempts=[*(replace(a) for a in run.attempts), Attempt(State.RUNNING, moment)])
    return Next(replace(ex, task_runs=[], labels=dict(ex.labels), inputs=dict(ex.inputs)), running, stored)
