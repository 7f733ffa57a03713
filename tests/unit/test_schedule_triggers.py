"""Schedule triggers: fire dates as pure functions, then the scheduler against the embedded store (SQLite).

PostgreSQL and a real `celestra server` process are covered in tests/integration/test_scheduler.py.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app import runtime
from app.errors import FlowValidationError
from app.model.loader import load_flow
from app.model.states import State
from app.model.triggers import Schedule, ScheduleOnDates
from app.services.scheduler import Scheduler, trigger_states

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def schedule(cron: str, **extra: Any) -> Schedule:
    return Schedule(id="s", type="io.kestra.plugin.core.trigger.Schedule", cron=cron, **extra)


# -- fire dates --------------------------------------------------------------------------------------------------
def test_next_date_follows_the_cron_in_its_time_zone() -> None:
    paris = schedule("0 9 * * *", timezone="Europe/Paris")
    assert paris.next_after(T0) == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)  # 09:00 in Paris is 08:00Z in winter
    assert schedule("@hourly").next_after(T0) == T0 + timedelta(hours=1)
    assert schedule("*/10 * * * * *", withSeconds=True).next_after(T0) == T0 + timedelta(seconds=10)


def test_missed_dates_follow_recover_missed_schedules() -> None:
    every_minute, now = "* * * * *", T0 + timedelta(minutes=3, seconds=1)
    fired, following = schedule(every_minute).due(T0, now)
    assert fired == [T0 + timedelta(minutes=i) for i in range(4)]
    assert following == T0 + timedelta(minutes=4)
    assert schedule(every_minute, recoverMissedSchedules="LAST").due(T0, now)[0] == [T0 + timedelta(minutes=3)]
    assert schedule(every_minute, recoverMissedSchedules="NONE").due(T0, now)[0] == [T0 + timedelta(minutes=3)]
    hourly_none = schedule("@hourly", recoverMissedSchedules="NONE")
    assert hourly_none.due(T0, T0 + timedelta(hours=2, minutes=30)) == ([], T0 + timedelta(hours=3))  # all late


def test_late_maximum_delay_drops_dates_too_old_to_run() -> None:
    fired, _ = schedule("* * * * *", lateMaximumDelay="PT90S").due(T0, T0 + timedelta(minutes=3))
    assert fired == [T0 + timedelta(minutes=2), T0 + timedelta(minutes=3)]


def test_schedule_on_dates_fires_each_date_once_then_has_none_left() -> None:
    dates = ScheduleOnDates(id="d", type="io.kestra.plugin.core.trigger.ScheduleOnDates",
                            dates=["2026-11-30T09:00:00Z", "2026-11-30T10:00:00+01:00", "2026-12-24T18:00:00Z"])
    assert dates.next_after(T0 - timedelta(seconds=1)) == T0
    fired, following = dates.due(T0, T0 + timedelta(hours=1))
    assert fired == [T0] and following == datetime(2026, 12, 24, 18, tzinfo=UTC)  # 10:00+01:00 is T0 itself
    assert dates.next_after(datetime(2026, 12, 25, tzinfo=UTC)) is None


def test_a_bad_trigger_is_a_validation_error_naming_line_and_field() -> None:
    source = """id: sched
namespace: company.team
tasks:
  - id: hi
    type: io.kestra.plugin.core.log.Log
    message: hi
triggers:
  - id: nightly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 25 * * *"
  - id: paris
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "@daily"
    timezone: Europe/Pariss
"""
    with pytest.raises(FlowValidationError) as info:
        load_flow(source, "sched.yaml")
    message = str(info.value)
    assert "sched.yaml:10:" in message and "triggers[0].cron" in message and "0 25 * * *" in message
    assert "sched.yaml:14:" in message and "Europe/Pariss" in message


def test_a_trigger_type_nothing_fires_yet_is_refused_unless_disabled() -> None:
    source = """id: hooked
namespace: company.team
tasks: [{id: hi, type: io.kestra.plugin.core.log.Log, message: hi}]
triggers: [{id: hook, type: io.kestra.plugin.kafka.Trigger, topic: abc%s}]
"""
    with pytest.raises(FlowValidationError) as info:
        load_flow(source % "")
    message = str(info.value)
    assert "triggers[0]" in message and "'io.kestra.plugin.kafka.Trigger' is not supported yet" in message
    assert "disabled: true" in message
    flow = load_flow(source % ", disabled: true")
    assert flow.triggers == [{"id": "hook", "type": "io.kestra.plugin.kafka.Trigger", "topic": "abc",
                              "disabled": True}]


# -- the scheduler on the embedded store ------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _only_this_tests_flows(request: pytest.FixtureRequest) -> Any:
    """The embedded store is shared by the test session: each test starts with no flow deployed, so only its own
    schedules are due at the made-up moments it ticks at."""
    if "client" not in request.fixturenames:
        yield
        return
    from app.store.tables import flows, triggers

    with runtime.store().begin() as conn:
        conn.execute(flows.delete())
        conn.execute(triggers.delete())
    yield


def scheduled_flow(cron: str = "* * * * *", **trigger: Any) -> str:
    flow_id = f"sched_{uuid.uuid4().hex[:8]}"
    extra = "".join(f"\n    {key}: {value}" for key, value in trigger.items())
    return f"""id: {flow_id}
namespace: company.sched
inputs:
  - id: who
    type: STRING
tasks:
  - id: say
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ inputs.who }}}} at {{{{ trigger.date }}}}, next {{{{ trigger.next }}}}"
triggers:
  - id: tick
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "{cron}"
    inputs:
      who: "cron@{{{{ trigger.date }}}}"{extra}
"""


def fired(client: Any, flow_id: str) -> list[Any]:
    found = [ex for ex in client.executions(namespace="company.sched") if ex.flow_id == flow_id]
    return [client.wait(ex.id, timeout=30) for ex in sorted(found, key=lambda ex: ex.trigger["date"])]


def test_a_deployed_schedule_fires_each_date_once_with_trigger_variables(client: Any) -> None:
    flow_id = client.deploy(scheduled_flow())["id"]
    scheduler = Scheduler()
    assert scheduler.tick(T0 - timedelta(seconds=30)) == 0  # first sight: the next date is stored, nothing fires
    assert scheduler.tick(T0 - timedelta(seconds=1)) == 0
    assert scheduler.tick(T0) == 1
    assert scheduler.tick(T0 + timedelta(seconds=2)) == 0  # the same date never fires twice
    [ex] = fired(client, flow_id)
    assert ex.state == State.SUCCESS
    assert ex.trigger["date"] == T0.isoformat() and ex.trigger["next"] == (T0 + timedelta(minutes=1)).isoformat()
    assert ex.inputs == {"who": f"cron@{T0.isoformat()}"}  # trigger inputs are rendered with the trigger
    assert ex.task_runs[0].outputs["value"] == f"cron@{T0.isoformat()} at {T0.isoformat()}, next {ex.trigger['next']}"
    state = next(s for s in trigger_states("company.sched") if s["flow_id"] == flow_id)
    assert state["last_date"] == T0 and state["last_execution_id"] == ex.id


def test_after_an_outage_all_missed_dates_fire_in_order(client: Any) -> None:
    flow_id = client.deploy(scheduled_flow())["id"]
    Scheduler().tick(T0 - timedelta(seconds=30))
    assert Scheduler().tick(T0 + timedelta(minutes=2, seconds=5)) == 3
    assert [ex.trigger["date"] for ex in fired(client, flow_id)] == [
        (T0 + timedelta(minutes=i)).isoformat() for i in range(3)]


def test_only_the_last_missed_date_fires_with_last(client: Any) -> None:
    flow_id = client.deploy(scheduled_flow(recoverMissedSchedules="LAST"))["id"]
    Scheduler().tick(T0 - timedelta(seconds=30))
    assert Scheduler().tick(T0 + timedelta(minutes=2, seconds=5)) == 1
    assert [ex.trigger["date"] for ex in fired(client, flow_id)] == [(T0 + timedelta(minutes=2)).isoformat()]
    assert Scheduler().tick(T0 + timedelta(minutes=3)) == 1  # and it goes on from there


def test_schedulers_ticking_at_once_fire_a_date_once(client: Any) -> None:
    flow_id = client.deploy(scheduled_flow())["id"]
    Scheduler().tick(T0 - timedelta(seconds=30))
    counts: list[int] = []
    threads = [threading.Thread(target=lambda: counts.append(Scheduler().tick(T0))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(counts) == 1 and len(fired(client, flow_id)) == 1


def test_a_changed_cron_starts_afresh_and_a_disabled_trigger_lets_dates_pass(client: Any) -> None:
    source = scheduled_flow("@daily")
    flow_id = client.deploy(source)["id"]
    Scheduler().tick(T0)
    state = next(s for s in trigger_states("company.sched") if s["flow_id"] == flow_id)
    assert state["next_date"] == datetime(2026, 12, 1, tzinfo=UTC)
    client.deploy(source.replace('"@daily"', '"*/5 * * * *"') + "    disabled: true\n")
    scheduler = Scheduler()
    scheduler.tick(T0 + timedelta(seconds=1))
    state = next(s for s in trigger_states("company.sched") if s["flow_id"] == flow_id)
    assert state["next_date"] == T0 + timedelta(minutes=5)  # from now, with the new cron
    assert scheduler.tick(T0 + timedelta(minutes=11)) == 0  # disabled: 09:05 and 09:10 pass unfired
    state = next(s for s in trigger_states("company.sched") if s["flow_id"] == flow_id)
    assert state["next_date"] == T0 + timedelta(minutes=15) and fired(client, flow_id) == []


def test_a_date_whose_inputs_no_longer_validate_is_skipped_and_said(client: Any,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    source = scheduled_flow().replace('      who: "cron@{{ trigger.date }}"\n', "      nobody: x\n")
    flow_id = client.deploy(source)["id"]
    Scheduler().tick(T0 - timedelta(seconds=30))
    assert Scheduler().tick(T0) == 0
    assert "who" in caplog.text and "skipped" in caplog.text
    assert fired(client, flow_id) == []
