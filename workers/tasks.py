"""The Celery tasks: one runs a task run on a worker, one starts an execution on the server."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from app import engine
from app.celery_app import RUN_TASK, START_EXECUTION
from workers.execute import run_task_run


@shared_task(name=RUN_TASK, ignore_result=True)
def run_task(execution_id: str, task_run_id: str, **names: Any) -> None:
    run_task_run(execution_id, task_run_id)


@shared_task(name=START_EXECUTION, ignore_result=True)
def start_execution(execution_id: str) -> None:
    engine.start(execution_id)
