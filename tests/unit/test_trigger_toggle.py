"""`trigger.Toggle` switches a trigger of a deployed flow of its namespace on or off at run time: a Schedule's
dates pass by unfired while it is off, a Flow trigger starts nothing; the switch wins over `disabled` in the
source. A trigger it cannot find, of another namespace or of a flow not deployed, fails the task saying which."""

from __future__ import annotations

import textwrap
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app import runtime
from app.engine import flow_triggers
from app.model.states import State
from app.services.scheduler import Scheduler
from app.store.tables import flows, trigger_toggles

NS = "unit.toggle"
T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _only_this_tests_flows(client: Any) -> Any:
    def clear() -> None:
        with runtime.store().begin() as conn:
            conn.execute(flows.delete())
            conn.execute(trigger_toggles.delete())
        flow_triggers.deployed_flows.forget_listing()

    clear()
    yield
    clear()


def scheduled(disabled: bool = False) -> str:
    return textwrap.dedent(f"""
        id: scheduled_{uuid.uuid4().hex[:6]}
        namespace: {NS}
        tasks:
          - {{id: say, type: io.kestra.plugin.core.debug.Return, format: "{{{{ trigger.date }}}}"}}
        triggers:
          - {{id: every_minute, type: io.kestra.plugin.core.trigger.Schedule, cron: "* * * * *",
              disabled: {str(disabled).lower()}}}
        """)


def toggle(flow_id: str, trigger: str = "every_minute", namespace: str = NS) -> str:
    """Kestra's own example: an If on an input, then a Toggle on or off."""
    return textwrap.dedent(f"""
        id: switch
        namespace: {NS}
        inputs:
          - {{id: enable, type: BOOLEAN}}
        tasks:
          - id: if
            type: io.kestra.plugin.core.flow.If
            condition: "{{{{ inputs.enable }}}}"
            then:
              - {{id: enable, type: io.kestra.plugin.core.trigger.Toggle, namespace: {namespace}, flowId: {flow_id},
                  trigger: {trigger}, enabled: true}}
            else:
              - {{id: disable, type: io.kestra.plugin.core.trigger.Toggle, namespace: {namespace}, flowId: {flow_id},
                  trigger: "{{{{ '{trigger}' }}}}", enabled: false}}
        """)


def fired(client: Any, flow_id: str) -> int:
    return sum(1 for ex in client.executions(namespace=NS, limit=200) if ex.flow_id == flow_id)


def test_a_schedule_switched_off_lets_its_dates_pass_and_switched_on_fires_again(client: Any) -> None:
    flow_id = client.deploy(scheduled())["id"]
    scheduler = Scheduler()
    scheduler.tick(T0 - timedelta(seconds=30))
    off = client.run(toggle(flow_id), {"enable": False}, wait=True, timeout=30)
    assert off.state == State.SUCCESS, off.to_json()
    assert scheduler.tick(T0) == 0 and scheduler.tick(T0 + timedelta(minutes=1)) == 0
    assert client.run(toggle(flow_id), {"enable": True}, wait=True, timeout=30).state == State.SUCCESS
    assert scheduler.tick(T0 + timedelta(minutes=2)) == 1
    assert fired(client, flow_id) == 1


def test_switching_on_wins_over_disabled_in_the_source(client: Any) -> None:
    flow_id = client.deploy(scheduled(disabled=True))["id"]
    scheduler = Scheduler()
    scheduler.tick(T0 - timedelta(seconds=30))
    assert scheduler.tick(T0) == 0
    assert client.run(toggle(flow_id), {"enable": True}, wait=True, timeout=30).state == State.SUCCESS
    assert scheduler.tick(T0 + timedelta(minutes=1)) == 1


def test_a_flow_trigger_switched_off_starts_nothing(client: Any) -> None:
    upstream = textwrap.dedent(f"""
        id: upstream
        namespace: {NS}
        tasks:
          - {{id: r, type: io.kestra.plugin.core.debug.Return, format: x}}
        """)
    watcher = client.deploy(textwrap.dedent(f"""
        id: watcher
        namespace: {NS}
        tasks:
          - {{id: r, type: io.kestra.plugin.core.debug.Return, format: seen}}
        triggers:
          - id: after
            type: io.kestra.plugin.core.trigger.Flow
            conditions:
              - {{type: io.kestra.plugin.core.condition.ExecutionFlow, namespace: {NS}, flowId: upstream}}
        """))["id"]
    assert client.run(toggle(watcher, "after"), {"enable": False}, wait=True, timeout=30).state == State.SUCCESS
    ended = client.run(upstream, wait=True, timeout=30)
    deadline = time.monotonic() + 10
    while not runtime.store().get_execution(ended.id, with_runs=False).downstream_checked:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert fired(client, watcher) == 0
    assert client.run(toggle(watcher, "after"), {"enable": True}, wait=True, timeout=30).state == State.SUCCESS
    client.run(upstream, wait=True, timeout=30)
    deadline = time.monotonic() + 10
    while fired(client, watcher) < 1:
        assert time.monotonic() < deadline, "the watcher switched on again never started"
        time.sleep(0.02)


@pytest.mark.parametrize(("target", "message"), [
    ({"trigger": "nope"}, "has no trigger 'nope' (its triggers: every_minute)"),
    ({"namespace": "elsewhere"}, "a task toggles only the triggers of its own namespace 'unit.toggle'"),
    ({"flow": "never_deployed"}, f"Flow {NS}.never_deployed is not deployed"),
])
def test_a_trigger_it_cannot_toggle_fails_the_task_saying_why(client: Any, target: dict[str, str],
                                                               message: str) -> None:
    flow_id = client.deploy(scheduled())["id"]
    source = toggle(target.get("flow", flow_id), target.get("trigger", "every_minute"),
                    target.get("namespace", NS))
    ex = client.run(source, {"enable": False}, wait=True, timeout=30)
    assert ex.state == State.FAILED
    [run] = [r for r in ex.task_runs if r.task_id == "disable"]
    assert message in (run.error or ""), run.error
