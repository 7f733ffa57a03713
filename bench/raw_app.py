"""The raw Celery baseline: a no-op task and a time-stamping task, a Redis broker and a Redis result backend
(round trips need it).

Delivery settings match Celestra's (JSON, acks_late, prefetch 1) so the comparison measures Celestra's own
work, not a difference in how messages are acknowledged. Configured from the environment because the worker
imports it as `celery -A raw_app worker` (PYTHONPATH=bench/).
"""

from __future__ import annotations

import os
import time

from celery import Celery

BROKER_URL = os.environ.get("BENCH_RAW_BROKER_URL", "redis://127.0.0.1:6379/15")
BACKEND_URL = os.environ.get("BENCH_RAW_BACKEND_URL", BROKER_URL)
QUEUE = os.environ.get("BENCH_RAW_QUEUE", "bench.raw")

app = Celery("bench_raw", broker=BROKER_URL, backend=BACKEND_URL, set_as_current=False)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    result_serializer="json",
    task_default_queue=QUEUE,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    result_expires=600,
)


@app.task(name="bench.noop")
def noop() -> None:
    return None


@app.task(name="bench.stamp")
def stamp() -> float:
    """The wall-clock time at which the task body starts (one-way dispatch = this - the time at send)."""
    return time.time()


@app.task(name="bench.poll")
def poll(url: str) -> None:
    """What a polling trigger's evaluation does at its simplest: one HTTP GET."""
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:
        response.read()
