"""When a failed attempt runs again: Kestra's retry policies."""

from __future__ import annotations

from datetime import datetime, timedelta

from app.model.flow import Retry
from app.model.records import TaskRun


def retry_delay(policy: Retry | None, run: TaskRun, now: datetime) -> timedelta | None:
    """None when the failed attempt is final; else how long to wait before the next one."""
    if policy is None or policy.behavior != "RETRY_FAILED_TASK":
        return None
    attempts = len(run.attempts)
    if policy.max_attempts is not None and attempts >= policy.max_attempts:
        return None
    delay = timedelta(seconds=policy.delay(attempts))
    if policy.maxDuration is not None:
        first = run.attempts[0].start if run.attempts and run.attempts[0].start else run.created
        if now + delay - first > policy.maxDuration:
            return None
    if policy.max_attempts is None and policy.maxDuration is None:
        return None  # Kestra requires one of the two; without either we do not loop forever
    return delay
