"""Schedule `conditions`: which cron dates fire. Each condition as a pure function of a date, then the scheduler
firing only the dates they let through, with Kestra's `trigger.next`/`trigger.previous` under conditions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app import runtime
from app.errors import FlowValidationError
from app.model.loader import load_flow
from app.model.triggers import Schedule
from app.services.scheduler import Scheduler

MONDAY = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # a Monday, the last one of November 2026
C = "io.kestra.plugin.core.condition."


def with_conditions(*conditions: dict[str, Any], cron: str = "0 9 * * *", **extra: Any) -> Schedule:
    return Schedule(id="s", type="io.kestra.plugin.core.trigger.Schedule", cron=cron,
                    conditions=list(conditions), **extra)


def fires(trigger: Schedule, moment: datetime) -> bool:
    return trigger.holds(moment.astimezone(trigger.zone), {"flow": {"id": "f", "namespace": "n"}})


def days(start: datetime, count: int) -> list[datetime]:
    return [start + timedelta(days=i) for i in range(count)]


def test_day_of_week_weekend_and_day_in_month() -> None:
    monday = with_conditions({"type": C + "DayWeek", "dayOfWeek": "MONDAY"})
    assert [fires(monday, d) for d in days(MONDAY, 8)] == [True] + [False] * 6 + [True]
    weekend = with_conditions({"type": "io.kestra.core.models.conditions.types.WeekendCondition"})
    assert [d.day for d in days(MONDAY, 7) if fires(weekend, d)] == [5, 6]  # Saturday and Sunday, 5-6 December

    def in_month(which: str, day: str = "MONDAY") -> list[int]:
        trigger = with_conditions({"type": C + "DayWeekInMonthCondition", "dayOfWeek": day, "dayInMonth": which})
        return [d.day for d in days(datetime(2026, 12, 1, 9, tzinfo=UTC), 31) if fires(trigger, d)]

    assert in_month("FIRST") == [7] and in_month("SECOND") == [14] and in_month("THIRD") == [21]
    assert in_month("FOURTH") == [28] and in_month("LAST") == [28] and in_month("LAST", "THURSDAY") == [31]
    assert in_month("FIRST", "TUESDAY") == [1]


def test_the_date_is_taken_in_the_triggers_time_zone() -> None:
    # 23:30 UTC on Sunday is already Monday in Paris.
    monday_in_paris = with_conditions({"type": C + "DayWeek", "dayOfWeek": "MONDAY"}, cron="30 0 * * *",
                                      timezone="Europe/Paris")
    assert fires(monday_in_paris, datetime(2026, 11, 29, 23, 30, tzinfo=UTC))
    assert not fires(monday_in_paris, datetime(2026, 11, 30, 23, 30, tzinfo=UTC))


def test_public_holidays_of_a_country_and_of_a_subdivision() -> None:
    france = with_conditions({"type": C + "PublicHoliday", "country": "FR"})
    assert fires(france, datetime(2026, 7, 14, 9, tzinfo=UTC)) and fires(france, datetime(2026, 12, 25, 9, tzinfo=UTC))
    assert not fires(france, datetime(2026, 7, 15, 9, tzinfo=UTC))
    new_york = with_conditions({"type": C + "PublicHoliday", "country": "US", "subDivision": "US-NY"})
    lincoln = datetime(2026, 2, 12, 9, tzinfo=UTC)  # Lincoln's Birthday: a holiday in New York, not federal
    assert fires(new_york, lincoln)
    assert not fires(with_conditions({"type": C + "PublicHoliday", "country": "US"}), lincoln)
    work_days = with_conditions({"type": C + "Not", "conditions": [
        {"type": C + "PublicHoliday", "country": "FR"}, {"type": C + "Weekend"}]})
    assert [d.day for d in days(datetime(2026, 12, 24, 9, tzinfo=UTC), 5) if fires(work_days, d)] == [24, 28]


def test_time_between_is_strict_and_compares_instants() -> None:
    afternoon = with_conditions({"type": C + "TimeBetween", "after": "16:00:00+02:00", "before": "20:00:00+02:00"},
                                cron="*/5 * * * *")
    at = lambda h, m: datetime(2026, 6, 1, h, m, tzinfo=UTC)  # noqa: E731  (14:00Z is 16:00+02:00)
    assert not fires(afternoon, at(14, 0)) and fires(afternoon, at(14, 5)) and fires(afternoon, at(17, 55))
    assert not fires(afternoon, at(18, 0)) and not fires(afternoon, at(9, 0))
    only_before = with_conditions({"type": C + "TimeBetween", "before": "12:00:00Z"}, cron="*/5 * * * *")
    assert fires(only_before, at(11, 55)) and not fires(only_before, at(12, 0))


def test_date_time_between_is_inclusive() -> None:
    december = with_conditions({"type": C + "DateTimeBetween", "after": "2026-12-01T09:00:00Z",
                                "before": "2026-12-31T09:00:00Z"})
    assert [fires(december, d) for d in (MONDAY, MONDAY + timedelta(days=1), datetime(2026, 12, 31, 9, tzinfo=UTC),
                                         datetime(2027, 1, 1, 9, tzinfo=UTC))] == [False, True, True, False]
    other_date = with_conditions({"type": C + "DateTimeBetween", "date": "2030-01-01T00:00:00Z",
                                  "after": "2029-01-01T00:00:00Z"})  # `date` may name any date
    assert fires(other_date, MONDAY)


def test_or_not_and_expression() -> None:
    either = with_conditions({"type": C + "Or", "conditions": [
        {"type": C + "DayWeek", "dayOfWeek": "MONDAY"}, {"type": C + "DayWeek", "dayOfWeek": "FRIDAY"}]})
    assert [d.strftime("%a") for d in days(MONDAY, 7) if fires(either, d)] == ["Mon", "Fri"]
    odd_days = with_conditions({"type": C + "Expression",
                                "expression": "{{ trigger.date | date('d') | number is odd }}"})
    assert [d.day for d in days(MONDAY, 4) if fires(odd_days, d)] == [1, 3]
    assert not fires(with_conditions({"type": C + "Expression", "expression": "  "}), MONDAY)
    assert not fires(with_conditions({"type": C + "ExpressionCondition", "expression": "{{ 1 > 2 }}"}), MONDAY)


def test_next_and_previous_are_the_nearest_dates_that_fire() -> None:
    monday = with_conditions({"type": C + "DayWeek", "dayOfWeek": "MONDAY"})
    scope = {"flow": {"id": "f", "namespace": "n"}}
    assert monday.matching(MONDAY, scope, forward=True) == MONDAY + timedelta(days=7)
    assert monday.matching(MONDAY, scope, forward=False) == MONDAY - timedelta(days=7)
    never = with_conditions({"type": C + "DateTimeBetween", "before": "2000-01-01T00:00:00Z"})
    assert never.matching(MONDAY, scope, forward=True) is None  # none within the look-ahead: no next date


@pytest.mark.parametrize(("condition", "expected"), [
    ('{type: io.kestra.plugin.core.condition.DayWeek, dayOfWeek: MONDY}', "dayOfWeek must be one of MONDAY"),
    ('{type: io.kestra.plugin.core.condition.DayWeekInMonth, dayOfWeek: MONDAY, dayInMonth: FIFTH}',
     "dayInMonth must be one of FIRST"),
    ('{type: io.kestra.plugin.core.condition.TimeBetween, after: "16:00:00"}', "has no offset"),
    ('{type: io.kestra.plugin.core.condition.TimeBetween}', "needs `after`, `before` or both"),
    ('{type: io.kestra.plugin.core.condition.DateTimeBetween, after: "next week"}', "not an ISO-8601"),
    ('{type: io.kestra.plugin.core.condition.PublicHoliday, country: XX}', "Country XX not available"),
    ('{type: io.kestra.plugin.core.condition.PublicHoliday, country: US, subDivision: ZZ}', "subdivision ZZ"),
    ('{type: io.kestra.plugin.core.condition.Not, conditions: []}', "conditions"),
    ('{type: io.kestra.plugin.core.condition.ExecutionFlow, namespace: a, flowId: b}',
     "condition type 'io.kestra.plugin.core.condition.ExecutionFlow' is not supported yet on a Schedule trigger"),
    ('{type: io.kestra.plugin.core.condition.DayWek, dayOfWeek: MONDAY}',
     "did you mean 'io.kestra.plugin.core.condition.DayWeek'"),
])
def test_a_bad_condition_is_refused_when_the_flow_loads(condition: str, expected: str) -> None:
    source = f"""id: conditioned
namespace: company.team
tasks:
  - id: hi
    type: io.kestra.plugin.core.log.Log
    message: hi
triggers:
  - id: daily
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 9 * * *"
    conditions:
      - {condition}
"""
    with pytest.raises(FlowValidationError) as info:
        load_flow(source, "conditioned.yaml")
    assert expected in str(info.value) and str(info.value).startswith("conditioned.yaml:12:")


# -- the scheduler ---------------------------------------------------------------------------------------------------
@pytest.fixture
def clean(client: Any) -> Any:
    from app.store.tables import flows, triggers

    with runtime.store().begin() as conn:
        conn.execute(flows.delete())
        conn.execute(triggers.delete())
    return client


def conditioned_flow(*conditions: str) -> str:
    listed = "".join(f"\n      - {c}" for c in conditions)
    return f"""id: cond_{uuid.uuid4().hex[:8]}
namespace: company.cond
tasks:
  - id: say
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ trigger.previous }}}} < {{{{ trigger.date }}}} < {{{{ trigger.next }}}}"
triggers:
  - id: daily
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 9 * * *"
    conditions:{listed}
"""


def fired(client: Any, flow_id: str) -> list[Any]:
    found = [ex for ex in client.executions(namespace="company.cond") if ex.flow_id == flow_id]
    return [client.wait(ex.id, timeout=30) for ex in sorted(found, key=lambda ex: ex.trigger["date"])]


def test_only_the_dates_the_conditions_let_through_fire(clean: Any) -> None:
    flow_id = clean.deploy(conditioned_flow("{type: io.kestra.plugin.core.condition.DayWeek, dayOfWeek: MONDAY}"))["id"]
    scheduler = Scheduler()
    scheduler.tick(MONDAY - timedelta(hours=1))
    started = sum(scheduler.tick(MONDAY + timedelta(days=i, seconds=1)) for i in range(9))
    assert started == 2  # Monday 30 November and Monday 7 December; the days between pass by
    first, second = fired(clean, flow_id)
    assert first.trigger["date"] == MONDAY.isoformat()
    assert first.trigger["next"] == (MONDAY + timedelta(days=7)).isoformat()  # the next date that fires
    assert first.trigger["previous"] == (MONDAY - timedelta(days=7)).isoformat()
    assert second.task_runs[0].outputs["value"] == f"{MONDAY.isoformat()} < {second.trigger['date']} < " \
                                                   f"{(MONDAY + timedelta(days=14)).isoformat()}"


def test_an_expression_condition_reads_the_namespaces_kv_store(clean: Any) -> None:
    flow_id = clean.deploy(conditioned_flow(
        "{type: io.kestra.plugin.core.condition.Expression, expression: \"{{ kv('switch') == 'on' }}\"}"))["id"]
    store = runtime.store()
    scheduler = Scheduler()
    scheduler.tick(MONDAY - timedelta(hours=1))
    store.kv_put("company.cond", "switch", "off")
    assert scheduler.tick(MONDAY) == 0
    store.kv_put("company.cond", "switch", "on")
    assert scheduler.tick(MONDAY + timedelta(days=1)) == 1
    assert [ex.trigger["date"] for ex in fired(clean, flow_id)] == [(MONDAY + timedelta(days=1)).isoformat()]


def test_a_condition_that_cannot_be_evaluated_skips_its_date_and_says_why(clean: Any,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    flow_id = clean.deploy(conditioned_flow(
        "{type: io.kestra.plugin.core.condition.DayWeek, date: \"{{ trigger.nope }}\", dayOfWeek: MONDAY}"))["id"]
    scheduler = Scheduler()
    scheduler.tick(MONDAY - timedelta(hours=1))
    assert scheduler.tick(MONDAY) == 0
    assert "cannot be evaluated" in caplog.text and "nope" in caplog.text
    assert scheduler.tick(MONDAY + timedelta(days=1)) == 0  # it moved on: the trigger is not stuck on that date
    assert fired(clean, flow_id) == []


def test_schedule_on_dates_takes_conditions_too() -> None:
    from app.model.triggers import ScheduleOnDates

    dates = ScheduleOnDates(id="d", type="io.kestra.plugin.core.trigger.ScheduleOnDates",
                            dates=["2026-11-30T09:00:00Z", "2026-12-05T09:00:00Z", "2026-12-07T09:00:00Z"],
                            conditions=[{"type": C + "Not", "conditions": [{"type": C + "Weekend"}]}])
    scope = {"flow": {"id": "f", "namespace": "n"}}
    assert [dates.holds(d, scope) for d in dates._aware()] == [True, False, True]
    assert dates.matching(MONDAY, scope, forward=True) == MONDAY + timedelta(days=7)  # Saturday's date passes
