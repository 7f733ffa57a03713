"""The Celery tasks: one runs a task run on a worker, one starts an execution on the server."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task

from app import runtime
from app.celery_app import RUN_TASK, START_EXECUTION
from app.engine import events
from app.store.outage import until_stored
from workers import heartbeat
from workers.execute import run_task_run

log = logging.getLogger("celestra.worker")


@shared_task(name=RUN_TASK, ignore_result=True, bind=True)
def run_task(self: Task, execution_id: str, task_run_id: str, **names: Any) -> None:
    group = names.get("group")
    embedded = runtime.settings().embedded  # the in-process worker serves every queue
    served = None if embedded else (heartbeat.served_queues(self.app) or {runtime.settings().default_queue})
    if group and served is not None and group not in served:
        # Misrouted: never run it here. Requeueing would hand it back to this same queue forever, so it is sent
        # to its own group's queue instead, and this copy is acknowledged.
        log.error("refusing task run %s of group %r: this worker serves %s; sent to queue %r",
                  task_run_id, group, sorted(served), group)
        self.app.send_task(RUN_TASK, args=[execution_id, task_run_id], kwargs=names, queue=group)
        return
    worker = self.request.hostname or "unknown"
    if embedded:
        worker = worker.split("@", 1)[-1]
    run_task_run(execution_id, task_run_id, worker, served)


@shared_task(name=START_EXECUTION, ignore_result=True)
def start_execution(execution_id: str) -> None:
    until_stored(f"start of execution {execution_id}", lambda: events.start(execution_id),
                 runtime.settings().store_retry_for)
