"""Records to and from table rows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.model.records import Attempt, Execution, TaskRun, now
from app.model.states import State
from app.store.tables import executions


def aware(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


EXECUTION_COLUMNS = [c for c in executions.c if c.name != "flow_source"]
# What a step never changes: where the run sits, and what the worker writes (the external id, saved the moment it
# exists, while the run's copy in a step's memory may be older).
FROZEN_RUN_COLUMNS = ("id", "execution_id", "task_id", "parent_id", "value", "has_value", "created", "external_id")


def execution_row(ex: Execution) -> dict[str, Any]:
    return {
        "id": ex.id,
        "namespace": ex.namespace,
        "flow_id": ex.flow_id,
        "flow_revision": ex.flow_revision,
        "flow_source": ex.flow_source,
        "state": ex.state.value,
        "inputs": ex.inputs,
        "outputs": ex.outputs,
        "labels": ex.labels,
        "parent_execution_id": ex.parent_execution_id,
        "parent_task_run_id": ex.parent_task_run_id,
        "trigger": ex.trigger,
        "trigger_key": ex.trigger_key,
        "downstream_checked": ex.downstream_checked,
        "error": ex.error,
        "created": ex.created,
        "started": ex.started,
        "ended": ex.ended,
        "version": ex.version,
        "restarts": ex.restarts,
        "original_id": ex.original_id,
        "retry_attempt": ex.retry_attempt,
        "original_created": ex.original_created,
        "sla_due": ex.sla_due,
        "final_state": ex.final_state.value if ex.final_state else None,
    }


def execution_from_row(row: Any) -> Execution:
    return Execution(
        id=row["id"],
        namespace=row["namespace"],
        flow_id=row["flow_id"],
        flow_revision=row["flow_revision"],
        flow_source=None,
        state=State(row["state"]),
        inputs=row["inputs"] or {},
        outputs=row["outputs"] or {},
        labels=row["labels"] or {},
        parent_execution_id=row["parent_execution_id"],
        parent_task_run_id=row["parent_task_run_id"],
        trigger=row["trigger"],
        trigger_key=row["trigger_key"],
        downstream_checked=row["downstream_checked"],
        error=row["error"],
        created=aware(row["created"]) or now(),
        started=aware(row["started"]),
        ended=aware(row["ended"]),
        version=row["version"],
        restarts=row["restarts"],
        original_id=row["original_id"],
        retry_attempt=row["retry_attempt"],
        original_created=aware(row["original_created"]),
        sla_due=aware(row["sla_due"]),
        final_state=State(row["final_state"]) if row["final_state"] else None,
    )


def task_run_row(run: TaskRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "execution_id": run.execution_id,
        "task_id": run.task_id,
        "parent_id": run.parent_id or "",
        "value": run.value if run.value is not None else "",
        "has_value": run.value is not None,
        "loop_values": run.values,
        "iteration": run.iteration,
        "loop_round": run.iteration or 0,
        "state": run.state.value,
        "attempts": [a.to_json() for a in run.attempts],
        "outputs": run.outputs,
        "worker_group": run.worker_group,
        "worker": run.worker,
        "worker_pid": run.worker_pid,
        "claim_token": run.claim_token,
        "external_id": run.external_id,
        "error": run.error,
        "created": run.created,
        "started": run.started,
        "ended": run.ended,
        "next_at": run.next_at,
        "sent_at": run.sent_at,
        "sent_by": run.sent_by,
    }


def task_run_from_row(row: Any) -> TaskRun:
    return TaskRun(
        id=row["id"],
        execution_id=row["execution_id"],
        task_id=row["task_id"],
        parent_id=row["parent_id"] or None,
        value=row["value"] if row["has_value"] else None,
        values=row["loop_values"] or [],
        iteration=row["iteration"],
        state=State(row["state"]),
        attempts=[Attempt.from_json(a) for a in row["attempts"] or []],
        outputs=row["outputs"] or {},
        worker_group=row["worker_group"],
        worker=row["worker"],
        worker_pid=row["worker_pid"],
        claim_token=row["claim_token"],
        external_id=row["external_id"],
        error=row["error"],
        created=aware(row["created"]) or now(),
        started=aware(row["started"]),
        ended=aware(row["ended"]),
        next_at=aware(row["next_at"]),
        sent_at=aware(row["sent_at"]),
        sent_by=row["sent_by"],
        row_version=row["row_version"],
    )


def log_row(execution_id: str, run: TaskRun | None, level: str, message: str) -> dict[str, Any]:
    return {
        "execution_id": execution_id,
        "task_run_id": run.id if run else None,
        "task_id": run.task_id if run else None,
        "attempt": max(len(run.attempts) - 1, 0) if run else None,
        "timestamp": now(),
        "level": level,
        "message": message,
    }
