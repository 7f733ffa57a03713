"""The scheduler: fires the Schedule and ScheduleOnDates triggers of deployed flows. Runs inside `celestra server`.

Each trigger has one row in `triggers` holding its next fire date. Firing a date is one transaction: a conditional
UPDATE moves the row from that date to the following one, and the execution is stored with it. So a date fires
exactly once, also with several servers ticking at the same moment (the loser's UPDATE matches no row and its
transaction, execution included, rolls back), and a crash between the two writes cannot happen.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from app import runtime, templating
from app.engine import events
from app.engine.deployed import Deployed, DeployedFlows
from app.model.inputs import InputError
from app.model.records import Execution, now
from app.model.triggers import Schedule, ScheduleOnDates, TimedTrigger
from app.store import trigger_toggles
from app.store.tables import triggers

log = logging.getLogger("celestra.scheduler")


class _AlreadyFired(Exception):
    """Another scheduler moved the trigger first: this transaction must not store its execution."""


class Scheduler:
    def __init__(self, deployed: DeployedFlows | None = None) -> None:
        self.deployed = deployed or DeployedFlows()
        self.toggles: dict[trigger_toggles.Key, bool] = {}

    def tick(self, moment: datetime | None = None) -> int:
        """Fire every due date; returns how many executions were started."""
        moment = moment or now()
        started = 0
        self.toggles = trigger_toggles.toggled(runtime.store())
        for deployed in self.deployed.all():
            for trigger in deployed.flow.triggers:
                if isinstance(trigger, Schedule | ScheduleOnDates):
                    try:
                        started += self._tick_trigger(deployed, trigger, moment)
                    except Exception:
                        log.exception("trigger %s of %s.%s failed; tried again next tick", trigger.id,
                                      deployed.namespace, deployed.flow_id)
        return started

    def _tick_trigger(self, deployed: Deployed, trigger: TimedTrigger, moment: datetime) -> int:
        key = (triggers.c.namespace == deployed.namespace, triggers.c.flow_id == deployed.flow_id,
               triggers.c.trigger_id == trigger.id)
        definition = json.dumps(trigger.model_dump(mode="json", exclude={"description"}), sort_keys=True)
        store = runtime.store()
        with store.reads() as conn:
            row = conn.execute(sa.select(triggers.c.next_date, triggers.c.definition).where(*key)).first()
        if row is None or row.definition != definition:
            # New, or changed (cron, dates, zone): it starts from now, as a new schedule does in Kestra.
            self._reset(deployed, trigger, definition, moment, exists=row is not None)
            return 0
        stored_next = _utc(row.next_date)
        if stored_next is None or stored_next > moment:
            return 0
        if deployed.flow.disabled or trigger_toggles.is_disabled(self.toggles, deployed.namespace, deployed.flow_id,
                                                                  trigger.id, trigger.disabled):
            self._move(key, stored_next, _utc(trigger.next_after(moment)))  # dates pass by unfired
            return 0
        dates, after = trigger.due(stored_next.astimezone(trigger.zone), moment)
        current: datetime | None = stored_next
        started = 0
        for index, date in enumerate(dates):
            following = _utc(dates[index + 1] if index + 1 < len(dates) else after)
            assert current is not None
            outcome = self._fire(deployed, trigger, key, current, date, following, moment)
            if outcome == "lost":
                return started  # another scheduler got there first: it fires the rest
            started += outcome == "fired"
            current = following
        if current is not None and current <= moment:  # dates dropped by recovery or lateMaximumDelay
            self._move(key, current, _utc(after))
        return started

    def _fire(self, deployed: Deployed, trigger: TimedTrigger, key: tuple[Any, ...], current: datetime,
              date: datetime, following: datetime | None, moment: datetime) -> Literal["fired", "skipped", "lost"]:
        def claim(conn: Connection, ex: Execution) -> None:
            moved = conn.execute(triggers.update().where(*key, triggers.c.next_date == current).values(
                next_date=following, last_date=_utc(date), last_execution_id=ex.id, updated=moment))
            if moved.rowcount != 1:
                raise _AlreadyFired

        flow = {"id": deployed.flow_id, "namespace": deployed.namespace}
        previous, shown_next = trigger.previous_before(date), following.astimezone(trigger.zone) if following else None
        if trigger.conditions:
            try:
                conditions_scope = {"flow": flow, "kv": _kv(deployed.namespace)}
                if not trigger.holds(date, conditions_scope):
                    log.info("trigger %s of %s.%s: conditions not met for %s, not fired", trigger.id,
                             deployed.namespace, deployed.flow_id, date.isoformat())
                    return "skipped" if self._move(key, current, following) else "lost"
                # Under conditions, trigger.previous/next are the nearest dates that fire (Kestra's).
                previous = trigger.matching(date, conditions_scope, forward=False)
                shown_next = trigger.matching(date, conditions_scope, forward=True)
            except (ValueError, templating.TemplateError) as exc:
                log.error("trigger %s of %s.%s: its conditions cannot be evaluated for %s (%s); date skipped",
                          trigger.id, deployed.namespace, deployed.flow_id, date.isoformat(), exc)
                return "skipped" if self._move(key, current, following) else "lost"
        variables = trigger.variables(date, previous, shown_next)
        scope = {"trigger": variables, "flow": flow}
        try:
            inputs = templating.render_value(trigger.inputs, scope)  # Kestra renders them: "{{ trigger.date }}"
            ex = events.create_and_start(deployed.flow, deployed.source, inputs, revision=deployed.revision,
                                         trigger=variables, trigger_key=f"{trigger.id}@{_utc(date)}", also=claim)
        except _AlreadyFired:
            return "lost"
        except (InputError, templating.TemplateError) as exc:  # bad inputs for this date: skip it, say why
            log.error("trigger %s of %s.%s: %s; date %s skipped", trigger.id, deployed.namespace, deployed.flow_id,
                      exc, date.isoformat())
            return "skipped" if self._move(key, current, following) else "lost"
        log.info("trigger %s of %s.%s fired for %s: execution %s", trigger.id, deployed.namespace,
                 deployed.flow_id, date.isoformat(), ex.id)
        return "fired"

    @staticmethod
    def _move(key: tuple[Any, ...], current: datetime, following: datetime | None) -> bool:
        with runtime.store().begin() as conn:
            moved = conn.execute(triggers.update().where(*key, triggers.c.next_date == current)
                                 .values(next_date=following, updated=now()))
        return bool(moved.rowcount == 1)

    @staticmethod
    def _reset(deployed: Deployed, trigger: TimedTrigger, definition: str, moment: datetime, exists: bool) -> None:
        values = {"definition": definition, "next_date": _utc(trigger.next_after(moment)), "updated": moment}
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
                pass  # another scheduler created it in the meantime


def _kv(namespace: str) -> Any:
    """`kv()` for conditions: a key of the flow's namespace (or another one named)."""
    def kv(key: str, namespace_: str | None = None, error_on_missing: bool = False) -> Any:
        value = runtime.store().kv_get(namespace_ or namespace, key)
        if value is None and error_on_missing:
            raise templating.TemplateError(f"The key '{key}' does not exist in the namespace "
                                           f"'{namespace_ or namespace}'.")
        return value
    return kv


def trigger_states(namespace: str | None = None) -> list[dict[str, Any]]:
    """Every schedule and polling trigger's stored state, for `celestra triggers`."""
    query = sa.select(triggers).order_by(triggers.c.namespace, triggers.c.flow_id, triggers.c.trigger_id)
    if namespace:
        query = query.where(triggers.c.namespace == namespace)
    with runtime.store().reads() as conn:
        return [{**row._mapping, **{column: _utc(getattr(row, column)) for column in (
                    "next_date", "last_date", "evaluation_sent", "last_evaluated")}}
                for row in conn.execute(query)]


def _utc(moment: datetime | None) -> datetime | None:
    """Stored in UTC: SQLite keeps wall-clock text, so every write must use one zone for `==` to match."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


__all__ = ["Scheduler", "trigger_states"]
