"""Embedded mode: an in-process Celery worker on the in-memory broker, serving every queue, plus the timers.

This is what `celestra run FLOW.yaml` uses when no broker is configured: nothing to install or start.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from app import runtime
from app.engine import dispatch
from app.services.timers import TimerLoop

log = logging.getLogger("celestra.embedded")
_lock = threading.Lock()
_runtime: EmbeddedRuntime | None = None


class EmbeddedRuntime:
    def __init__(self, concurrency: int = 8):
        from app.celery_app import get_celery

        settings = runtime.settings()
        self.celery = get_celery()
        self.queues = {settings.default_queue, settings.executor_queue, *settings.worker_groups}
        self.worker: Any = self.celery.WorkController(
            app=self.celery, concurrency=concurrency, pool="threads", loglevel="WARNING", logfile=None,
            hostname=f"embedded@{_hostname()}", queues=sorted(self.queues), without_heartbeat=True,
            without_mingle=True, without_gossip=True, ready_callback=None,
        )
        self.thread = threading.Thread(target=self.worker.start, daemon=True, name="celestra-embedded-worker")
        self.timers = TimerLoop(interval=0.05)

    def start(self) -> EmbeddedRuntime:
        dispatch.subscribe_queues(self.ensure_queue)
        self.thread.start()
        self.timers.start()
        return self

    def ensure_queue(self, queue: str) -> None:
        """Serve a queue first seen at dispatch time (a worker group named by a template)."""
        if queue in self.queues:
            return
        with _lock:
            if queue not in self.queues:
                self.queues.add(queue)
                self.worker.consumer.add_task_queue(queue)

    def stop(self) -> None:
        dispatch.unsubscribe_queues(self.ensure_queue)
        self.timers.stop()
        self.worker.stop(in_sighandler=False)
        self.thread.join(5)


def _hostname() -> str:
    import socket

    return socket.gethostname()


def ensure_started() -> EmbeddedRuntime:
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = EmbeddedRuntime().start()
    return _runtime


def current() -> EmbeddedRuntime | None:
    return _runtime


def shutdown() -> None:
    global _runtime
    with _lock:
        rt, _runtime = _runtime, None
    if rt is not None:
        rt.stop()
