"""The poller: decides when each polling trigger of a deployed flow is evaluated, and sends the evaluation to a
worker of its group. Runs inside `celestra server`, next to the scheduler.

A trigger's row in `triggers` holds its next evaluation date and the evaluation in flight (`evaluation_id`). Sending
one is a conditional UPDATE that sets the id only where none is set, so a trigger is evaluated once at a time, also
with several servers. The worker stores its result only where the id is still its own (workers/polling.py). An
evaluation that does not answer within `trigger_evaluation_timeout` (a hung database, a worker killed, a message
lost with a broker) is released here, and the trigger is evaluated again one interval later: nothing can hold a
trigger forever. When no worker of the group is alive, the group's fallback decides: WAIT keeps the trigger due until
one is, FAIL and CANCEL record the evaluation as failed or cancelled and try again one interval later.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from app import runtime, templating
from app.engine import dispatch, liveness
from app.engine.deployed import Deployed, DeployedFlows
from app.engine.routing import route_trigger
from app.model.polling import PollingTrigger
from app.model.records import now
from app.model.schedule_conditions import conditions_hold
from app.store import trigger_toggles
from app.store.tables import triggers

log = logging.getLogger("celestra.poller")
GRACE = timedelta(seconds=5)  # the worker stops a late evaluation itself at the timeout: its answer may follow


class Poller:
    def __init__(self, deployed: DeployedFlows | None = None) -> None:
        self.deployed = deployed or DeployedFlows()

    def tick(self, moment: datetime | None = None) -> int:
        """Send every due evaluation; returns how many were sent."""
        moment = moment or now()
        polling = [(d, t) for d in self.deployed.all() for t in d.flow.triggers if isinstance(t, PollingTrigger)]
        if not polling:
            return 0
        with runtime.store().reads() as conn:
            rows = {(r.namespace, r.flow_id, r.trigger_id): r for r in conn.execute(sa.select(triggers).where(
                triggers.c.namespace.in_({d.namespace for d, _ in polling})))}
        toggles = trigger_toggles.toggled(runtime.store())
        sent = 0
        for deployed, trigger in polling:
            try:
                sent += self._tick_trigger(deployed, trigger, rows.get((deployed.namespace, deployed.flow_id,
                                                                         trigger.id)), toggles, moment)
            except Exception:
                log.exception("polling trigger %s of %s.%s failed; tried again next tick", trigger.id,
                              deployed.namespace, deployed.flow_id)
        return sent

    def _tick_trigger(self, deployed: Deployed, trigger: PollingTrigger, row: Any,
                      toggles: dict[trigger_toggles.Key, bool], moment: datetime) -> int:
        key = (triggers.c.namespace == deployed.namespace, triggers.c.flow_id == deployed.flow_id,
               triggers.c.trigger_id == trigger.id)
        definition = json.dumps(trigger.model_dump(mode="json", exclude={"description"}), sort_keys=True)
        if row is None or row.definition != definition:
            _reset(deployed, trigger, definition, moment, exists=row is not None)  # evaluated at once
            return 0
        if row.evaluation_id is not None:
            sent = _utc(row.evaluation_sent)
            timeout = timedelta(seconds=runtime.settings().trigger_evaluation_timeout)
            if sent is not None and moment - sent > timeout + GRACE:
                log.warning("polling trigger %s of %s.%s: evaluation %s sent at %s did not answer within %s; "
                            "released", trigger.id, deployed.namespace, deployed.flow_id, row.evaluation_id,
                            sent.isoformat(), timeout)
                _finish(key, row.evaluation_id, moment, trigger,
                        f"TIMED OUT: no answer within {timeout.total_seconds():g}s; released")
            return 0
        due = _utc(row.next_date)
        if due is None or due > moment:
            return 0
        if deployed.flow.disabled or trigger_toggles.is_disabled(toggles, deployed.namespace, deployed.flow_id,
                                                                  trigger.id, trigger.disabled):
            return 0  # due as soon as it is switched on again
        if trigger.conditions:
            try:
                holds = conditions_hold(trigger.conditions, {
                    "trigger": {"date": moment.isoformat()},
                    "flow": {"id": deployed.flow_id, "namespace": deployed.namespace}}, UTC)
            except (ValueError, templating.TemplateError) as exc:
                _moved(key, due, moment + trigger.interval, f"FAILED: conditions cannot be evaluated: {exc}")
                return 0
            if not holds:
                _moved(key, due, moment + trigger.interval, "conditions not met: not evaluated")
                return 0
        try:
            route = route_trigger(runtime.settings(), deployed.flow, trigger.workerGroup)
        except Exception as exc:  # an undeclared group, a templated key that does not render
            _moved(key, due, moment + trigger.interval, f"FAILED: {exc}")
            return 0
        if route.group is not None and not liveness.group_is_alive(route.group):
            waiting = f"no worker of group '{route.group}' is alive"
            if route.fallback == "WAIT":
                if row.last_result != f"WAITING: {waiting}":
                    _moved(key, due, due, f"WAITING: {waiting}")  # stays due: evaluated once one beats
                return 0
            outcome = "FAILED" if route.fallback == "FAIL" else "CANCELLED"
            (log.error if outcome == "FAILED" else log.warning)(
                "polling trigger %s of %s.%s: %s (fallback %s)", trigger.id, deployed.namespace, deployed.flow_id,
                waiting, route.fallback)
            _moved(key, due, moment + trigger.interval, f"{outcome}: {waiting} (fallback {route.fallback})")
            return 0
        evaluation_id = uuid.uuid4().hex
        with runtime.store().begin() as conn:
            claimed = conn.execute(triggers.update().where(
                *key, triggers.c.evaluation_id.is_(None), triggers.c.next_date == _utc(row.next_date)).values(
                evaluation_id=evaluation_id, evaluation_sent=moment, updated=moment)).rowcount
        if claimed != 1:
            return 0  # another server sent it
        try:
            dispatch.send_evaluation(deployed.namespace, deployed.flow_id, trigger.id, evaluation_id, route.group)
        except Exception as exc:  # noqa: BLE001 - the broker is away: release at once, due again next interval
            _finish(key, evaluation_id, moment, trigger, f"FAILED: the evaluation could not be sent: {exc}")
            return 0
        return 1


def _moved(key: tuple[Any, ...], due: datetime, following: datetime, result: str) -> None:
    """Not evaluated this time (conditions, fallback): the reason recorded, the next date moved to `following`."""
    values: dict[str, Any] = {"next_date": _utc(following), "last_result": result, "updated": now()}
    if following != due:
        values["last_evaluated"] = values["updated"]
    with runtime.store().begin() as conn:
        conn.execute(triggers.update().where(*key, triggers.c.evaluation_id.is_(None)).values(**values))


def _finish(key: tuple[Any, ...], evaluation_id: str, moment: datetime, trigger: PollingTrigger, result: str) -> None:
    with runtime.store().begin() as conn:
        conn.execute(triggers.update().where(*key, triggers.c.evaluation_id == evaluation_id).values(
            evaluation_id=None, evaluation_sent=None, next_date=_utc(moment + trigger.interval), last_result=result,
            last_evaluated=moment, updated=moment))


def _reset(deployed: Deployed, trigger: PollingTrigger, definition: str, moment: datetime, exists: bool) -> None:
    """New or changed (another query, another folder): evaluated now, forgetting what it kept."""
    values = {"definition": definition, "next_date": _utc(moment), "updated": moment, "state": None,
              "evaluation_id": None, "evaluation_sent": None}
    with runtime.store().begin() as conn:
        if exists:
            conn.execute(triggers.update().where(
                triggers.c.namespace == deployed.namespace, triggers.c.flow_id == deployed.flow_id,
                triggers.c.trigger_id == trigger.id).values(**values))
            return
        try:
            with conn.begin_nested():
                conn.execute(triggers.insert().values(namespace=deployed.namespace, flow_id=deployed.flow_id,
                                                      trigger_id=trigger.id, **values))
        except IntegrityError:
            pass  # another server created it in the meantime


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


__all__ = ["Poller"]
