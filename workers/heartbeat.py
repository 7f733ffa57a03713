"""A worker announces itself while it runs: node name, host, the groups (queues) it serves, a heartbeat.

Started from Celery's worker_ready signal in the worker's main process, so `celery -A app worker -Q gpu` and
`celestra worker --worker-group gpu` both beat without any extra flag.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

from celery.signals import worker_ready, worker_shutdown

from app import runtime
from app.engine import attempts, liveness, probes
from app.model.records import now

log = logging.getLogger("celestra.liveness")


class Heartbeat:
    def __init__(self, consumer: Any):
        self.consumer = consumer
        self.worker_id = str(consumer.hostname)
        self.started = now()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="celestra-heartbeat")

    def groups(self) -> list[str]:
        task_consumer = getattr(self.consumer, "task_consumer", None)
        queues = getattr(task_consumer, "queues", None) or []
        internal = runtime.settings().executor_queue  # the server's queue is no worker group
        return sorted({q.name for q in queues} - {internal})

    def beat(self) -> None:
        liveness.beat(self.worker_id, socket.gethostname(), self.groups(), os.getpid(), self.started)
        self.resend_from_dead_processes()

    def resend_from_dead_processes(self) -> None:
        """A pool process killed while running a task (SIGKILL, out of memory): this worker still beats, so the
        server would never resend its run, and Celery may give its message to another worker, whose claim finds it
        RUNNING here. The run is sent again from here (a delivery back to this worker takes it over at once)."""
        for execution_id, task_run_id, pid in runtime.store().running_on(self.worker_id):
            if pid is not None and pid != os.getpid() and not attempts.runs_for_this_worker(pid):
                attempts.resend(execution_id, task_run_id, self.worker_id, dead_pid=pid)

    def _run(self) -> None:
        interval = runtime.settings().heartbeat_interval
        while True:
            try:
                self.beat()
            except Exception as exc:  # the store is briefly unreachable: beat again next time
                log.warning("heartbeat of %s failed", self.worker_id, exc_info=True)
                probes.record(self.worker_id, False, f"heartbeat failed: {str(exc).splitlines()[0][:200]}")
            else:
                probes.record(self.worker_id, True)  # `celestra probe worker` reads it
            if self.stopped.wait(interval):
                return

    def start(self) -> None:
        if not self.groups():
            return  # `celestra server`: it consumes only the executor queue and runs no task
        # A worker restarted under the same name within the liveness timeout: what its predecessor was running
        # is lost with it (this process has run nothing yet), so it is resent now.
        for execution_id, task_run_id, _ in runtime.store().running_on(self.worker_id):
            attempts.resend(execution_id, task_run_id, self.worker_id)
        self.beat()  # visible before the first task can arrive
        self.thread.start()

    def stop(self) -> None:
        if not self.thread.is_alive():
            return
        self.stopped.set()
        try:
            liveness.forget(self.worker_id)
        except Exception:
            log.warning("could not unregister %s", self.worker_id, exc_info=True)


_heartbeat: Heartbeat | None = None


@worker_ready.connect
def _on_ready(sender: Any = None, **_: Any) -> None:
    global _heartbeat
    if runtime.settings().embedded:
        return  # embedded: one process serves every queue, nobody needs to know
    _heartbeat = Heartbeat(sender)
    _heartbeat.start()


@worker_shutdown.connect
def _on_shutdown(**_: Any) -> None:
    if _heartbeat is not None:
        _heartbeat.stop()


def served_queues(app: Any) -> set[str] | None:
    """Queues this worker process consumes; None when it was started without -Q (the default queue)."""
    consume_from = getattr(app.amqp.queues, "consume_from", None)
    return set(consume_from) if consume_from else None
