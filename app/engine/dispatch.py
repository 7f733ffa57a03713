"""Sending messages: one per task run, routed to the queue of its worker group."""

from __future__ import annotations

from collections.abc import Callable

from app import runtime
from app.model.flow import Flow
from app.model.records import Execution, TaskRun

# Set by a process that consumes the queues itself (the embedded worker): it subscribes to a queue first seen at
# dispatch time, such as a worker group named by a template, before the message is sent there.
QueueSubscriber = Callable[[str], None]
_subscriber: QueueSubscriber | None = None


def subscribe_queues(subscriber: QueueSubscriber) -> None:
    global _subscriber
    _subscriber = subscriber


def unsubscribe_queues(subscriber: QueueSubscriber) -> None:
    global _subscriber
    if _subscriber == subscriber:
        _subscriber = None


def start_execution(execution_id: str) -> None:
    from app.celery_app import START_EXECUTION, get_celery

    get_celery().send_task(START_EXECUTION, args=[execution_id])


def send_task_runs(ex: Execution, flow: Flow, runs: list[TaskRun]) -> None:
    from app.celery_app import RUN_TASK, get_celery

    celery = get_celery()
    settings = runtime.settings()
    default_queue = settings.default_queue
    for run in runs:
        if settings.embedded and _subscriber is not None:
            _subscriber(run.worker_group or default_queue)
        # Names in kwargs make a message readable in Flower; they are identifiers, never property values.
        celery.send_task(
            RUN_TASK,
            args=[ex.id, run.id],
            kwargs={"namespace": ex.namespace, "flow": ex.flow_id, "task": run.task_id, "group": run.worker_group},
            queue=run.worker_group or default_queue,
        )
