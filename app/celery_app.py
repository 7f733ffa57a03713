"""The Celery application (`celery -A app worker ...` finds it as `app.celery`).

JSON only: a task message carries ids and names, never properties or secrets.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import worker_init, worker_process_init

from app import runtime
from app.model.registry import registry

RUN_TASK = "celestra.run_task"
START_EXECUTION = "celestra.start_execution"
EVALUATE_TRIGGER = "celestra.evaluate_trigger"  # a polling trigger's evaluation, on a worker of its group


def make_celery() -> Celery:
    settings = runtime.settings()
    celery = Celery("celestra", broker=settings.broker_url or "memory://", set_as_current=True)
    conf: dict[str, Any] = {
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": settings.default_queue,
        "task_routes": {START_EXECUTION: {"queue": settings.executor_queue}},
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        # Task events cost two publishes per task; Flower switches them on in the workers it watches.
        "worker_send_task_events": False,
    }
    if settings.embedded:
        # The in-memory transport polls; its default second-long sleep would dominate every task.
        conf["broker_transport_options"] = {"polling_interval": 0.001}
    celery.conf.update(conf)
    celery.autodiscover_tasks(["workers"], related_name="tasks", force=True)
    return celery


_celery: Celery | None = None


def get_celery() -> Celery:
    global _celery
    if _celery is None:
        _celery = make_celery()
    return _celery


def reset() -> None:
    """Forget the app (tests and the CLI reconfigure settings before first use)."""
    global _celery
    _celery = None


@worker_init.connect
def _before_the_pool(**_: Any) -> None:
    """Build the task registry in the worker's main process before it forks its pool: built later, by its heartbeat
    thread, a pool process forked meanwhile would start with the registry's lock held and never run a task."""
    registry()


@worker_process_init.connect
def _after_fork(**_: Any) -> None:
    runtime.store().after_fork()
