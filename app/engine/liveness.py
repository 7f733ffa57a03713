"""Which workers are alive, and which worker groups (queues) they serve.

Workers write a heartbeat row (workers/heartbeat.py); the executor reads it here to apply a group's fallback and the
server to resend the task runs of a worker that stopped beating. A short-lived cache keeps this off the per-task path.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from app import runtime
from app.model.records import now
from app.store.tables import workers


@dataclass(frozen=True)
class WorkerInfo:
    id: str
    hostname: str
    groups: tuple[str, ...]
    pid: int
    started: datetime
    heartbeat: datetime

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "hostname": self.hostname, "groups": list(self.groups), "pid": self.pid,
                "started": self.started.isoformat(), "heartbeat": self.heartbeat.isoformat()}


def _aware(moment: datetime) -> datetime:
    from datetime import UTC

    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def beat(worker_id: str, hostname: str, groups: list[str], pid: int, started: datetime) -> None:
    """Insert or refresh this worker's row."""
    store = runtime.store()
    moment = now()
    with store.begin() as conn:
        updated = conn.execute(
            workers.update().where(workers.c.id == worker_id).values(groups=groups, heartbeat=moment, pid=pid)
        ).rowcount
        if not updated:
            conn.execute(workers.insert().values(id=worker_id, hostname=hostname, groups=groups, pid=pid,
                                                 started=started, heartbeat=moment))


def forget(worker_id: str) -> None:
    with runtime.store().begin() as conn:
        conn.execute(workers.delete().where(workers.c.id == worker_id))


def all_workers() -> list[WorkerInfo]:
    with runtime.store().reads() as conn:
        rows = conn.execute(sa.select(workers).order_by(workers.c.id)).all()
    return [WorkerInfo(r.id, r.hostname, tuple(r.groups or ()), r.pid, _aware(r.started), _aware(r.heartbeat))
            for r in rows]


def is_alive(worker: WorkerInfo, moment: datetime | None = None) -> bool:
    timeout = timedelta(seconds=runtime.settings().worker_timeout)
    return (moment or now()) - worker.heartbeat <= timeout


def live_workers() -> list[WorkerInfo]:
    moment = now()
    return [w for w in all_workers() if is_alive(w, moment)]


def dead_workers() -> list[WorkerInfo]:
    moment = now()
    return [w for w in all_workers() if not is_alive(w, moment)]


class _LiveGroups:
    """Live groups, re-read at most once a second (a dispatch decision may be a second stale, never more)."""

    def __init__(self, ttl: float = 1.0):
        self.ttl = ttl
        self.lock = threading.Lock()
        self.loaded = 0.0
        self.groups: frozenset[str] = frozenset()
        os.register_at_fork(after_in_child=self.invalidate_after_fork)

    def invalidate_after_fork(self) -> None:
        """A forked pool process must not inherit the lock held by a thread of its parent (the heartbeat's)."""
        self.lock = threading.Lock()
        self.loaded = 0.0

    def __call__(self) -> frozenset[str]:
        with self.lock:
            if time.monotonic() - self.loaded > self.ttl:
                self.groups = frozenset(g for w in live_workers() for g in w.groups)
                self.loaded = time.monotonic()
            return self.groups

    def invalidate(self) -> None:
        with self.lock:
            self.loaded = 0.0


live_groups = _LiveGroups()


def group_is_alive(group: str) -> bool:
    if runtime.settings().embedded:
        return True  # the in-process worker serves every queue
    return group in live_groups()
