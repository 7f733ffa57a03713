"""`celestra server`: consumes execution starts and fires timers (retry delays, pauses, schedules, polling
triggers): the clock."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from app import runtime
from app.engine import attempts, concurrency, events, probes, redelivery
from app.model.records import now
from app.services.polling import Poller
from app.services.scheduler import Scheduler
from app.store import children, outage

log = logging.getLogger("celestra.server")


class TimerLoop:
    """Scans the store for due timers and advances their executions. One per server (or embedded process)."""

    def __init__(self, interval: float | None = None, schedules: bool = False):
        self.interval = interval if interval is not None else runtime.settings().timer_interval
        # Since when every tick reached the store: a worker is judged dead only on heartbeats it could have written.
        self.store_up_since: float | None = None
        # Only `celestra server` fires schedules: an embedded `celestra run` must not start other deployed flows.
        self.scheduler: Scheduler | None = Scheduler() if schedules else None
        # Polling triggers on a thread of their own, ticking faster: a due evaluation waits for nothing else.
        self.poller: Poller | None = Poller(self.scheduler.deployed) if self.scheduler is not None else None
        self.next_recovery = 0.0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True, name="celestra-timers")

    def start(self) -> TimerLoop:
        self.thread.start()
        if self.poller is not None:
            threading.Thread(target=self._poll_loop, daemon=True, name="celestra-poller").start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(5)

    def tick(self) -> int:
        store = runtime.store()
        due = store.due_timers(now())
        if self.store_up_since is None:
            self.store_up_since = time.monotonic()
        for execution_id in due:
            try:
                events.advance(execution_id)
            except Exception:
                log.exception("timer of execution %s failed; retried next tick", execution_id)
        # An execution whose start message was lost (broker restart, server down) is started again; so is the
        # oldest queued one of each flow, should the message of the end that freed its slot be lost.
        for execution_id in [*store.stalled_executions(timedelta(seconds=30)), *concurrency.queued_heads()]:
            events.start(execution_id)
        self.resend_from_dead_workers()
        if runtime.settings().embedded:
            if time.monotonic() >= self.next_recovery:  # what embedded processes that have exited left behind
                self.next_recovery = time.monotonic() + 1.0
                redelivery.recover_embedded()
        else:
            redelivery.resend_lost()  # runs whose message was never sent, or lost by the broker
        # A subflow that ended while the process that would tell its parent died.
        for child_id in children.ended_untold(store):
            events.child_ended(store.get_execution(child_id))
        events.retry_unchecked()  # ends whose flow triggers a crash left unstarted
        if self.scheduler is not None:
            self.scheduler.tick()
        return len(due)

    def resend_from_dead_workers(self) -> None:
        """Task runs held by a worker that stopped beating run again elsewhere (the broker may never resend them:
        Redis keeps an unacked message for its whole visibility timeout)."""
        from app.engine import liveness

        if self.store_up_since is None or \
                time.monotonic() - self.store_up_since < runtime.settings().worker_timeout:
            return  # the store was away: heartbeats failed with it, not (as far as anyone knows) the workers
        for dead in liveness.dead_workers():
            for execution_id, task_run_id, _ in runtime.store().running_on(dead.id):
                attempts.resend(execution_id, task_run_id, dead.id)
            liveness.forget(dead.id)
            log.warning("worker %s stopped beating; its task runs were resent", dead.id)

    def _poll_loop(self) -> None:
        assert self.poller is not None
        while not self.stopped.wait(runtime.settings().trigger_poll_interval):
            try:
                self.poller.tick()
            except Exception as exc:
                if not outage.is_outage(exc):
                    log.exception("polling trigger scan failed")
                else:
                    log.warning("polling trigger scan: the database is unreachable (%s)", str(exc).splitlines()[0])

    def _loop(self) -> None:
        # `celestra probe server` reads what the server's scans record (an embedded process is probed by nobody).
        node = probes.node_name("server") if self.scheduler is not None else None
        while not self.stopped.wait(self.interval):
            try:
                self.tick()
            except Exception as exc:
                reached = not outage.is_outage(exc)
                if not reached:
                    self.store_up_since = None
                    log.warning("timer scan: the database is unreachable (%s)", str(exc).splitlines()[0])
                else:
                    log.exception("timer scan failed")
            else:
                reached = True
            if node is not None:
                probes.record(node, reached)
