"""When a failed attempt runs again: Kestra's retry policies.

`behavior: RETRY_FAILED_TASK` (the default) runs the failed task again as a new attempt of its run;
`CREATE_NEW_EXECUTION` ends the execution RETRIED and runs the whole flow again as a new execution with the same
inputs (app/engine/retried.py), counting attempts and duration over the chain of executions.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from app.model.flow import Retry
from app.model.records import Execution, TaskRun


def retry_delay(policy: Retry | None, run: TaskRun, now: datetime) -> timedelta | None:
    """None when the failed attempt is final; else how long to wait before the next one."""
    if policy is None or policy.behavior != "RETRY_FAILED_TASK":
        return None
    first = run.attempts[0].start if run.attempts and run.attempts[0].start else run.created
    return _delay(policy, len(run.attempts), first, now)


def next_try(policy: Retry | None, run: TaskRun, ex: Execution, now: datetime) -> timedelta | None:
    """How long before the next try of a failed run, by either behavior; None when there is none."""
    if policy is not None and policy.behavior == "CREATE_NEW_EXECUTION":
        return _delay(policy, ex.retry_attempt, ex.original_created or ex.created, now)
    return retry_delay(policy, run, now)


def _delay(policy: Retry, attempts: int, first: datetime, now: datetime) -> timedelta | None:
    if policy.max_attempts is not None and attempts >= policy.max_attempts:
        return None
    delay = timedelta(seconds=policy.delay(attempts))
    if policy.maxDuration is not None and now + delay - first > policy.maxDuration:
        return None
    if policy.max_attempts is None and policy.maxDuration is None:
        return None  # Kestra requires one of the two; without either we do not loop forever
    return delay
