"""Celestra's records in the JSON shapes of Kestra's API (what Kestra's UI and its clients, kestrapy among them,
read), plus Celestra's own fields beside them (a task run's workerGroup and worker).

A state's `histories` are rebuilt from what is stored of it (created, started, ended), so they hold at most the
CREATED, RUNNING and final entries, not every transition.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import yaml

from app.model.inputs.values import format_duration
from app.model.records import Execution, TaskRun, iso, now
from app.model.states import State


def state(current: State, created: datetime | None, started: datetime | None, ended: datetime | None,
          moment: datetime | None = None) -> dict[str, Any]:
    """`moment`: now, for the duration of what has not ended (given once for a whole execution)."""
    created_at, started_at, ended_at = iso(created), iso(started), iso(ended)  # each formatted once
    histories = []
    if created_at is not None:
        histories.append({"state": "CREATED", "date": created_at})
    if started_at is not None and current != State.CREATED:
        histories.append({"state": "RUNNING", "date": started_at})
    if ended_at is not None and current not in (State.CREATED, State.RUNNING):
        histories.append({"state": current.value, "date": ended_at})
    start = created or started
    duration = format_duration(max((ended or moment or now()) - start, timedelta(0))) if start else None
    return {"current": current.value, "histories": histories, "startDate": created_at or started_at,
            "endDate": ended_at, "duration": duration}


def task_run(ex: Execution, run: TaskRun, moment: datetime | None = None) -> dict[str, Any]:
    return {
        "id": run.id, "executionId": ex.id, "namespace": ex.namespace, "flowId": ex.flow_id, "taskId": run.task_id,
        "parentTaskRunId": run.parent_id, "value": run.value, "iteration": run.iteration,
        "attempts": [{"state": state(a.state, a.start, a.start, a.end, moment)} for a in run.attempts],
        "outputs": run.outputs, "state": state(run.state, run.created, run.started, run.ended, moment),
        "workerGroup": run.worker_group, "worker": run.worker, "error": run.error,
    }


def execution(ex: Execution) -> dict[str, Any]:
    trigger, moment = ex.trigger, now()
    return {
        "id": ex.id, "namespace": ex.namespace, "flowId": ex.flow_id, "flowRevision": ex.flow_revision or 0,
        "labels": [{"key": k, "value": v} for k, v in ex.labels.items()],
        "taskRunList": [task_run(ex, run, moment) for run in ex.task_runs],
        "inputs": {k: ("******" if k in ex.secret_inputs and v is not None else v) for k, v in ex.inputs.items()},
        "outputs": ex.outputs,
        "state": state(ex.state, ex.created, ex.started, ex.ended, moment),
        "parentId": ex.parent_execution_id, "originalId": ex.original_id or ex.id,
        "trigger": {"id": trigger.get("id"), "type": trigger.get("type"), "variables": trigger} if trigger else None,
        "deleted": False,
        "metadata": {"attemptNumber": ex.restarts + 1, "originalCreatedDate": iso(ex.original_created or ex.created)},
        "error": ex.error,
    }


def flow(namespace: str, flow_id: str, revision: int, source: str, *, with_source: bool = True,
         updated: datetime | None = None) -> dict[str, Any]:
    """A flow as Kestra returns it: its YAML as JSON, with its revision (and its source, as Kestra's `source`)."""
    data = yaml.safe_load(source)
    body = data if isinstance(data, dict) else {}
    shaped = {**body, "id": flow_id, "namespace": namespace, "revision": revision,
              "disabled": bool(body.get("disabled", False)), "deleted": False, "updated": iso(updated)}
    if with_source:
        shaped["source"] = source
    return shaped


def log(ex: Execution, row: dict[str, Any]) -> dict[str, Any]:
    return {"namespace": ex.namespace, "flowId": ex.flow_id, "taskId": row["task_id"], "executionId": ex.id,
            "taskRunId": row["task_run_id"], "attemptNumber": row["attempt"], "timestamp": iso(row["timestamp"]),
            "level": row["level"], "message": row["message"]}
