"""The Celery tasks: one runs a task run on a worker, one evaluates a polling trigger on a worker, one starts an
execution on the server."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task

from app import runtime
from app.celery_app import EVALUATE_TRIGGER, RUN_TASK, START_EXECUTION
from app.engine import events
from app.store.outage import until_stored
from workers import heartbeat, polling
from workers.execute import run_task_run

log = logging.getLogger("celestra.worker")


def _served(task: Task) -> set[str] | None:
    """The queues this worker serves; None: the embedded in-process worker, which serves every queue."""
    if runtime.settings().embedded:
        return None
    return heartbeat.served_queues(task.app) or {runtime.settings().default_queue}


def _misrouted(task: Task, what: str, group: str | None, served: set[str] | None, args: list[Any],
               kwargs: dict[str, Any]) -> bool:
    """Work of a group this worker does not serve is never run here. Requeueing would hand it back to this same
    queue forever, so it is sent to its own group's queue instead, and this copy is acknowledged."""
    if not group or served is None or group in served:
        return False
    log.error("refusing %s of group %r: this worker serves %s; sent to queue %r", what, group, sorted(served), group)
    task.app.send_task(task.name, args=args, kwargs=kwargs, queue=group, shadow=task.request.shadow)
    return True


def _worker_name(task: Task) -> str:
    worker = task.request.hostname or "unknown"
    return worker.split("@", 1)[-1] if runtime.settings().embedded else worker


class TaskRunFailed(Exception):
    """Raised once a message's task runs are stored, when one of them FAILED: so the Celery task ends FAILURE, as
    Flower shows it, not SUCCESS. Nothing is retried by Celery for it (retries are the flow's own)."""


@shared_task(name=RUN_TASK, ignore_result=True, bind=True, throws=(TaskRunFailed,))
def run_task(self: Task, execution_id: str, task_run_id: str, **names: Any) -> None:
    served = _served(self)
    if _misrouted(self, f"task run {task_run_id}", names.get("group"), served, [execution_id, task_run_id], names):
        return
    failed = run_task_run(execution_id, task_run_id, _worker_name(self), served)
    if failed:
        raise TaskRunFailed("; ".join(failed))


@shared_task(name=EVALUATE_TRIGGER, ignore_result=True, bind=True)
def evaluate_trigger(self: Task, namespace: str, flow_id: str, trigger_id: str, evaluation_id: str,
                     group: str | None = None) -> None:
    args = [namespace, flow_id, trigger_id, evaluation_id]
    if _misrouted(self, f"evaluation of trigger {trigger_id}", group, _served(self), args, {"group": group}):
        return
    result = polling.evaluate(namespace, flow_id, trigger_id, evaluation_id, _worker_name(self))
    log.info("trigger %s of %s.%s evaluated: %s", trigger_id, namespace, flow_id, result)


@shared_task(name=START_EXECUTION, ignore_result=True)
def start_execution(execution_id: str) -> None:
    until_stored(f"start of execution {execution_id}", lambda: events.start(execution_id),
                 runtime.settings().store_retry_for)
