"""Flow triggers: when an execution ends, the deployed flows watching it start, each once.

Whether anyone watches an ending execution is decided in the transaction that ends it (`downstream_checked`); the
process that ended it then starts the watchers right after the commit. Each downstream execution carries the key
`<trigger id>:<upstream execution id>`, unique per flow, so a retry never starts one twice, and the timer loop
retries the ends a crash left unchecked. A flow never triggers itself: a flow trigger with no condition would
otherwise loop forever.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError

from app import runtime, templating
from app.engine.deployed import Deployed, DeployedFlows
from app.model.flow import Flow
from app.model.inputs import InputError
from app.model.records import Execution, now
from app.model.triggers import FlowTrigger
from app.store import trigger_toggles
from app.store.tables import executions

log = logging.getLogger("celestra.flow_triggers")
RETRY_AFTER = timedelta(seconds=30)  # an end still unchecked this long after is retried by the timer loop
deployed_flows = DeployedFlows()


def watchers(ex: Execution) -> list[tuple[Deployed, FlowTrigger]]:
    """The deployed flows (and their triggers) that start when this execution reaches its current state."""
    found = []
    for deployed in deployed_flows.all():
        if deployed.flow.disabled or (deployed.namespace, deployed.flow_id) == (ex.namespace, ex.flow_id):
            continue
        for trigger in deployed.flow.triggers:
            if isinstance(trigger, FlowTrigger) and trigger.matches(ex.namespace, ex.flow_id, ex.state):
                found.append((deployed, trigger))
    toggles = trigger_toggles.toggled(runtime.store()) if found else {}  # read only when one may fire
    return [(deployed, trigger) for deployed, trigger in found
            if not trigger_toggles.is_disabled(toggles, deployed.namespace, deployed.flow_id, trigger.id,
                                               trigger.disabled)]


class StartExecution(Protocol):
    """How a downstream execution is stored and started (app.engine.events.create_and_start)."""

    def __call__(self, flow: Flow, source: str, inputs: dict[str, Any], *, revision: int | None,
                 trigger: dict[str, Any], trigger_key: str) -> Execution: ...


def fire(ex: Execution, scope: Callable[[], dict[str, Any]], start: StartExecution) -> int:
    """Start every flow watching this ended execution, then mark it checked. Returns how many started.

    `scope()` builds the upstream execution's template context, which the watchers' inputs are rendered in: only
    when someone watches, and inside the watcher's own error handling (a SECRET input this process cannot decrypt
    is a TemplateError like any other: logged, no execution, the end still marked checked)."""
    started = 0
    variables = {"executionId": ex.id, "namespace": ex.namespace, "flowId": ex.flow_id,
                 "flowRevision": ex.flow_revision, "state": ex.state.value, "outputs": ex.outputs}
    for deployed, trigger in watchers(ex):
        try:
            inputs = templating.render_value(trigger.inputs, {**scope(), "trigger": variables})
            child = start(deployed.flow, deployed.source, inputs, revision=deployed.revision,
                          trigger={**variables, "id": trigger.id, "type": trigger.type},
                          trigger_key=f"{trigger.id}:{ex.id}")
        except IntegrityError:
            continue  # started already, by an earlier try for this same end
        except (InputError, templating.TemplateError) as exc:  # as in Kestra: no execution, the reason logged
            log.error("flow trigger %s of %s.%s: no execution for %s: %s", trigger.id, deployed.namespace,
                      deployed.flow_id, ex.id, exc)
            continue
        started += 1
        log.info("flow trigger %s of %s.%s started %s after %s ended %s", trigger.id, deployed.namespace,
                 deployed.flow_id, child.id, ex.id, ex.state.value)
    with runtime.store().begin() as conn:
        conn.execute(executions.update().where(executions.c.id == ex.id).values(downstream_checked=True))
    return started


def unchecked_ends(limit: int = 100) -> list[str]:
    """Ends a crash left unchecked (the process that ended them died before starting their watchers)."""
    query = executions.select().with_only_columns(executions.c.id).where(
        executions.c.downstream_checked.is_(False), executions.c.ended <= now() - RETRY_AFTER).limit(limit)
    with runtime.store().reads() as conn:
        return [row.id for row in conn.execute(query)]
