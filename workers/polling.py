"""One evaluation of a polling trigger, on a worker of its group (app/services/polling.py decides when and sends it).

The worker renders the trigger's properties itself (`secret()` resolved here, never sent), asks, and stores what it
found in one transaction: the trigger's row, and the execution when it fires. Both are written only if the row
still names this evaluation, so an evaluation the server released after its timeout cannot start an execution
late, and two copies of one message cannot start two. The evaluation is stopped at `trigger_evaluation_timeout`
(the same kill event a task's timeout sets: a SQL statement is cancelled on the server, a socket shut).
"""

from __future__ import annotations

import logging
import threading
import traceback
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from app import runtime, templating
from app.engine import events
from app.engine.deployed import Deployed, DeployedFlows
from app.engine.trigger_stops import polled_key
from app.engine.variables import env_vars
from app.errors import TaskFailure, TaskKilled
from app.model.inputs import InputError
from app.model.polling import Polled, PollingTrigger
from app.model.records import new_id, now
from app.store.storage import NamespaceStorage, execution_uri
from app.store.tables import triggers
from workers.execute import KeyValues
from workers.plugin_api import AttemptInfo, RunContext
from workers.secrets import SecretResolver

log = logging.getLogger("celestra.polling")
deployed_flows = DeployedFlows()


class _Stale(Exception):
    """The row no longer names this evaluation (released after its timeout, or the trigger changed)."""


def evaluate(namespace: str, flow_id: str, trigger_id: str, evaluation_id: str, worker: str) -> str:
    """Run one evaluation and store its result; returns the one-line result (for the worker's log)."""
    key = (triggers.c.namespace == namespace, triggers.c.flow_id == flow_id, triggers.c.trigger_id == trigger_id)
    with runtime.store().reads() as conn:
        row = conn.execute(sa.select(triggers.c.evaluation_id, triggers.c.state).where(*key)).first()
    if row is None or row.evaluation_id != evaluation_id:
        log.info("evaluation %s of trigger %s of %s.%s is no longer current: dropped", evaluation_id, trigger_id,
                 namespace, flow_id)
        return "stale"
    deployed, trigger = _find(namespace, flow_id, trigger_id)
    if trigger is None:  # deployed within the last second: this process's listing of flows predates it
        deployed_flows.forget_listing()
        deployed, trigger = _find(namespace, flow_id, trigger_id)
    if deployed is None or trigger is None:
        return _store(key, evaluation_id, worker, timedelta(seconds=60), Polled("FAILED: the trigger is no longer "
                                                                               "deployed"), None, None)
    execution_id = new_id()  # files the evaluation stores belong to the execution it may start (Kestra's layout)
    secrets = SecretResolver(runtime.settings().secrets_prefix)
    ctx = _context(deployed, trigger, execution_id, secrets)
    timeout = runtime.settings().trigger_evaluation_timeout
    timer = threading.Timer(timeout, ctx.kill_event.set)
    timer.daemon = True
    timer.start()
    try:
        polled = trigger.evaluate(ctx, dict(row.state or {}))
    except TaskKilled:
        polled = Polled(f"TIMED OUT: the evaluation was stopped after {timeout:g}s")
    except (TaskFailure, templating.TemplateError) as exc:
        polled = Polled(f"FAILED: {secrets.mask(str(exc))}")
    except Exception as exc:  # a bug in a plugin fails this evaluation, never the trigger
        log.debug("trigger %s crashed", trigger_id, exc_info=True)
        polled = Polled(secrets.mask(f"FAILED: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"))
    finally:
        timer.cancel()
    if ctx.kill_event.is_set() and polled.variables is not None:
        polled = Polled(f"TIMED OUT: the evaluation was stopped after {timeout:g}s")
    variables = secrets.mask_value(polled.variables) if polled.variables is not None else None
    return _store(key, evaluation_id, worker, trigger.interval, polled, variables, (deployed, trigger, execution_id))


def _find(namespace: str, flow_id: str, trigger_id: str) -> tuple[Deployed | None, PollingTrigger | None]:
    deployed = next((d for d in deployed_flows.all() if (d.namespace, d.flow_id) == (namespace, flow_id)), None)
    trigger = next((t for t in deployed.flow.triggers if isinstance(t, PollingTrigger) and t.id == trigger_id),
                   None) if deployed else None
    return deployed, trigger


def _store(key: tuple[Any, ...], evaluation_id: str, worker: str, interval: timedelta, polled: Polled,
           variables: dict[str, Any] | None, fire: tuple[Deployed, PollingTrigger, str] | None) -> str:
    moment = now()
    values: dict[str, Any] = {"evaluation_id": None, "evaluation_sent": None, "next_date": moment + interval,
                              "evaluated_on": worker, "last_evaluated": moment, "last_result": polled.summary,
                              "updated": moment}
    if polled.state is not None:
        values["state"] = polled.state

    def claim(conn: Connection, ex: Any = None) -> None:
        if ex is not None:
            values.update(last_date=moment, last_execution_id=ex.id)
        if conn.execute(triggers.update().where(*key, triggers.c.evaluation_id == evaluation_id)
                        .values(**values)).rowcount != 1:
            raise _Stale

    try:
        if variables is not None and fire is not None:
            deployed, trigger, execution_id = fire
            try:
                ex = events.create_and_start(deployed.flow, deployed.source, {}, revision=deployed.revision,
                                             trigger=variables, trigger_key=polled_key(trigger.id, evaluation_id),
                                             execution_id=execution_id, also=claim)
            except InputError as exc:  # the flow needs inputs a polling trigger cannot give
                polled = Polled(f"FAILED: {polled.summary}, but no execution: {exc}", state=polled.state)
                values["last_result"] = polled.summary
            else:
                log.info("trigger %s of %s.%s fired: %s; execution %s", trigger.id, deployed.namespace,
                         deployed.flow_id, polled.summary, ex.id)
                return f"{polled.summary}: execution {ex.id}"
        with runtime.store().begin() as conn:
            claim(conn)
    except _Stale:
        log.warning("evaluation %s was released before it answered (%s): its result is dropped", evaluation_id,
                    polled.summary)
        return "stale"
    return polled.summary


def _context(deployed: Deployed, trigger: PollingTrigger, execution_id: str, secrets: SecretResolver) -> RunContext:
    """What a trigger's properties render with: the flow, its variables, envs, globals, `secret()` and `kv()` of
    its namespace. No execution exists yet, so no inputs or outputs."""
    settings = runtime.settings()
    store = runtime.store()
    namespace = deployed.namespace

    def kv(key: str, namespace_: str | None = None, error_on_missing: bool = False) -> Any:
        value = store.kv_get(namespace_ or namespace, key)
        if value is None and error_on_missing:
            raise templating.TemplateError(f"The key '{key}' does not exist in the namespace "
                                           f"'{namespace_ or namespace}'.")
        return value

    variables: dict[str, Any] = {
        "flow": {"id": deployed.flow_id, "namespace": namespace, "revision": deployed.revision},
        "vars": deployed.flow.variables, "envs": env_vars(settings.env_vars_prefix),
        "globals": dict(settings.globals), "trigger": {"date": now().isoformat()},
        "secret": secrets, "kv": kv,
    }
    variables["render"] = templating.make_render_function(variables)

    def output_uri(name: str) -> str:
        return execution_uri(namespace, deployed.flow_id, execution_id, "trigger", trigger.id, name)

    def store_output(name: str, data: bytes) -> str:
        return runtime.storage().put(output_uri(name), data)

    def logged(level: str, message: str) -> None:
        log.log(logging.getLevelName("WARNING" if level == "WARN" else level),
                "trigger %s of %s.%s: %s", trigger.id, namespace, deployed.flow_id, secrets.mask(message))

    return RunContext(variables=variables, log=logged, storage=NamespaceStorage(runtime.storage(), namespace),
                      kv=KeyValues(store, settings.store_retry_for),
                      attempt=AttemptInfo(name=f"celestra-trigger-{execution_id}", labels={}),
                      store_output=store_output, output_uri=output_uri)


__all__ = ["evaluate"]
