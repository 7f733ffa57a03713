"""`stopAfter` of polling triggers: once an execution a trigger started ends in one of the listed states, the trigger
is switched off (a stored toggle, as `trigger.Toggle` sets it: `celestra triggers` and a Toggle task switch it on
again)."""

from __future__ import annotations

import logging

from app import runtime
from app.engine.deployed import DeployedFlows
from app.model.polling import PollingTrigger
from app.model.records import Execution
from app.store import trigger_toggles

log = logging.getLogger("celestra.triggers")
POLLED = "poll:"  # the trigger key of an execution a polling trigger started: poll:<trigger id>:<evaluation id>
deployed_flows = DeployedFlows()


def polled_key(trigger_id: str, evaluation_id: str) -> str:
    return f"{POLLED}{trigger_id}:{evaluation_id}"


def stop_after(ex: Execution) -> bool:
    """Switch off the trigger that started `ex` if its end state is one of the trigger's `stopAfter`."""
    if not ex.trigger_key or not ex.trigger_key.startswith(POLLED):
        return False
    trigger_id = ex.trigger_key[len(POLLED):].split(":", 1)[0]
    deployed = next((d for d in deployed_flows.all() if (d.namespace, d.flow_id) == (ex.namespace, ex.flow_id)), None)
    trigger = next((t for t in deployed.flow.triggers if isinstance(t, PollingTrigger) and t.id == trigger_id),
                   None) if deployed is not None else None
    if trigger is None or ex.state not in trigger.stopAfter:
        return False
    trigger_toggles.toggle(runtime.store(), ex.namespace, ex.flow_id, trigger_id, disabled=True)
    log.info("trigger %s of %s.%s switched off: execution %s ended %s (stopAfter)", trigger_id, ex.namespace,
             ex.flow_id, ex.id, ex.state.value)
    return True


__all__ = ["POLLED", "polled_key", "stop_after"]
