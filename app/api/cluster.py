"""Celestra's own paths, beside Kestra's: `/api/v1/celestra/worker-groups` (each group's live workers, what they
run now, its queue depth and the namespaces that default to it with their fallback) and `/api/v1/celestra/triggers`
(every trigger of the deployed flows, with what the server keeps of it)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app import runtime
from app.client import Client
from app.model.loader import parse_flow
from app.model.records import iso
from app.services.scheduler import trigger_states
from app.store.trigger_toggles import is_disabled, toggled

router = APIRouter(prefix="/celestra", tags=["Celestra"])


@router.get("/worker-groups")
def worker_groups() -> dict[str, Any]:
    settings = runtime.settings()
    running: dict[str, list[dict[str, Any]]] = {}
    for run in runtime.store().running_task_runs():
        running.setdefault(run["worker"], []).append({**run, "started": iso(run["started"])})
    defaults: dict[str, list[dict[str, str]]] = {}
    for namespace, configured in settings.namespaces.items():
        if configured.worker_group is not None:
            defaults.setdefault(configured.worker_group.key, []).append(
                {"namespace": namespace, "fallback": configured.worker_group.fallback})
    groups = Client().worker_groups()
    for group in groups:
        group["defaultOf"] = defaults.get(group["key"], [])
        for worker in group["workers"]:
            worker["running"] = [r for r in running.get(worker["id"], [])
                                 if (r["workerGroup"] or settings.default_queue) == group["key"]]
    # Embedded, one in-process worker serves every queue and writes no heartbeat: said, not shown as none alive.
    return {"embedded": settings.embedded, "defaultQueue": settings.default_queue, "results": groups}


@router.get("/triggers")
def triggers(namespace: str | None = None) -> dict[str, Any]:
    """Every trigger of the latest revision of each deployed flow; `state`: what the server keeps of a schedule or
    polling trigger (next date, last evaluation and its worker, last execution), None for the others."""
    store = runtime.store()
    stored = {(s["namespace"], s["flow_id"], s["trigger_id"]): s for s in trigger_states(namespace)}
    toggles = toggled(store)
    results = []
    for listed in store.list_flows(namespace):
        _, source = store.get_flow(listed["namespace"], listed["id"])
        flow = parse_flow(source)
        for trigger in flow.triggers:
            key = (flow.namespace, flow.id, trigger.id)
            state = stored.get(key)
            group = getattr(trigger, "workerGroup", None)
            results.append({
                "namespace": flow.namespace, "flowId": flow.id, "id": trigger.id, "type": trigger.type,
                "disabled": flow.disabled or is_disabled(toggles, *key, trigger.disabled),
                "workerGroup": group.key if group is not None else None,
                "state": None if state is None else {
                    "nextDate": iso(state["next_date"]), "lastDate": iso(state["last_date"]),
                    "lastExecutionId": state["last_execution_id"], "evaluatingSince": iso(state["evaluation_sent"]),
                    "lastEvaluated": iso(state["last_evaluated"]), "lastResult": state["last_result"],
                    "evaluatedOn": state["evaluated_on"]},
            })
    return {"results": results, "total": len(results)}
