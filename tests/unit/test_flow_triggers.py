"""Flow triggers on the embedded runtime: a deployed flow starts when the executions it watches end, once each."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import pytest

from app import runtime, templating
from app.engine import events, flow_triggers
from app.errors import FlowValidationError
from app.model.loader import load_flow
from app.model.records import Execution, now
from app.model.states import State
from app.store.tables import executions, flows

NS = "unit.flowtrig"
SHOW = "{{ inputs.received }} from {{ trigger.flowId }} {{ trigger.executionId }} {{ trigger.state }}"


@pytest.fixture(autouse=True)
def _only_this_tests_flows(client: Any) -> Any:
    """Deployed watchers would react to every later test's executions: each test deploys its own, then removes them."""

    def clear() -> None:
        with runtime.store().begin() as conn:
            conn.execute(flows.delete())
        flow_triggers.deployed_flows.forget_listing()

    clear()
    yield
    clear()


def upstream(fail: bool = False) -> str:
    task = ("type: io.kestra.plugin.core.execution.Fail\n    errorMessage: planned" if fail
            else 'type: io.kestra.plugin.core.debug.Return\n    format: "{{ inputs.n * 2 }}"')
    return f"""id: upstream_{uuid.uuid4().hex[:6]}
namespace: {NS}.team
inputs:
  - id: n
    type: INT
    defaults: 21
tasks:
  - id: produce
    {task}
outputs:
  - id: doubled
    type: STRING
    value: "{{{{ outputs.produce.value ?? 'none' }}}}"
"""


def watcher(conditions: str, inputs: str = "", extra: str = "") -> str:
    return f"""id: watcher_{uuid.uuid4().hex[:6]}
namespace: {NS}
inputs:
  - id: received
    type: STRING
    defaults: nothing
tasks:
  - id: show
    type: io.kestra.plugin.core.debug.Return
    format: "{SHOW}"
triggers:
  - id: after
    type: io.kestra.plugin.core.trigger.Flow{inputs}{extra}
    conditions:
{conditions}
"""


def started_by(client: Any, flow_id: str, expected: int = 0) -> list[Execution]:
    """The executions of `flow_id`, ended; waits (up to 10 s) for at least `expected` of them: watchers start right
    after the upstream's end is committed, so `Client.run` of the upstream may return a moment before."""
    deadline = time.monotonic() + 10
    while True:
        found = [ex for ex in client.executions(namespace=NS) if ex.flow_id == flow_id]
        if len(found) >= expected or time.monotonic() > deadline:
            return [client.wait(ex.id, timeout=30) for ex in found]
        time.sleep(0.02)


def settled(execution_id: str) -> None:
    """Wait until the watchers of this ended execution were all offered its end (started or not)."""
    deadline = time.monotonic() + 10
    while not runtime.store().get_execution(execution_id, with_runs=False).downstream_checked:
        assert time.monotonic() < deadline, f"execution {execution_id}'s end was never offered to its watchers"
        time.sleep(0.02)


def flow_condition(source: str) -> str:
    flow = load_flow(source)
    return (f"      - type: io.kestra.plugin.core.condition.ExecutionFlow\n"
            f"        namespace: {flow.namespace}\n        flowId: {flow.id}")


def test_a_watcher_starts_when_its_upstream_succeeds_with_inputs_from_its_outputs(client: Any) -> None:
    up = upstream()
    inputs = '\n    inputs:\n      received: "{{ outputs.produce.value }}/{{ trigger.outputs.doubled }}"'
    watching = client.deploy(watcher(flow_condition(up) + "\n      - type: io.kestra.plugin.core.condition."
                                     "ExecutionStatus\n        in: [SUCCESS]", inputs))["id"]
    done = client.run(up)
    assert done.state == State.SUCCESS
    [child] = started_by(client, watching, expected=1)
    assert child.state == State.SUCCESS
    assert child.inputs == {"received": "42/42"}
    assert child.task_runs[0].outputs["value"] == f"42/42 from {done.flow_id} {done.id} SUCCESS"
    assert child.trigger is not None and child.trigger["id"] == "after"
    assert client.run(up, inputs={"n": 5}).state == State.SUCCESS  # every end, not just the first
    assert sorted(ex.inputs["received"] for ex in started_by(client, watching, 2)) == ["10/10", "42/42"]


def test_status_and_namespace_conditions_filter_ends(client: Any) -> None:
    on_failure = client.deploy(watcher(
        f"      - type: io.kestra.plugin.core.condition.ExecutionNamespace\n        namespace: {NS}\n"
        "        comparison: PREFIX\n"
        "      - type: io.kestra.plugin.core.condition.ExecutionStatusCondition\n        in: [FAILED]"))["id"]
    succeeded = client.run(upstream())
    assert succeeded.state == State.SUCCESS
    settled(succeeded.id)
    assert started_by(client, on_failure) == []
    failed = client.run(upstream(fail=True))
    assert failed.state == State.FAILED
    [child] = started_by(client, on_failure, expected=1)
    assert child.trigger is not None and child.trigger["executionId"] == failed.id


def test_a_flow_never_triggers_itself(client: Any) -> None:
    source = watcher("      - type: io.kestra.plugin.core.condition.ExecutionNamespace\n"
                     f"        namespace: {NS}")
    flow_id = client.deploy(source)["id"]
    by_hand = client.run(source)
    assert by_hand.state == State.FAILED  # by hand it has no {{ trigger }}: it ends FAILED, an end all the same
    settled(by_hand.id)
    assert len(started_by(client, flow_id)) == 1  # the run itself, no execution started by its own end


def test_an_end_offered_twice_starts_each_watcher_once(client: Any) -> None:
    up = upstream()
    watching = client.deploy(watcher(flow_condition(up)))["id"]
    done = client.run(up)
    settled(done.id)  # the worker that ended it has offered the end
    assert events.on_ended(runtime.store().get_execution(done.id)) == 0  # already started once
    assert len(started_by(client, watching, expected=1)) == 1


def test_an_end_a_crash_left_unchecked_is_retried_by_the_timer_loop(client: Any) -> None:
    up = upstream()
    watching_source = watcher(flow_condition(up))
    done = client.run(up)  # nobody watches yet: checked at once
    settled(done.id)
    watching = client.deploy(watching_source)["id"]
    assert started_by(client, watching) == []
    with runtime.store().begin() as conn:  # as if the process that ended it died before starting the watchers
        conn.execute(executions.update().where(executions.c.id == done.id).values(
            downstream_checked=False, ended=now() - timedelta(minutes=1)))
    events.retry_unchecked()  # the embedded timer loop may get there first: either way, it starts once
    [child] = started_by(client, watching, expected=1)
    assert child.trigger is not None and child.trigger["executionId"] == done.id
    settled(done.id)
    assert events.retry_unchecked() == 0
    assert len(started_by(client, watching)) == 1


def test_inputs_the_watcher_rejects_start_nothing(client: Any, caplog: pytest.LogCaptureFixture) -> None:
    up = upstream()
    source = watcher(flow_condition(up), '\n    inputs:\n      received: "{{ outputs.nosuchtask.value }}"')
    watching = client.deploy(source)["id"]
    done = client.run(up)
    assert done.state == State.SUCCESS
    settled(done.id)
    assert started_by(client, watching) == []
    assert "no execution for" in caplog.text


def test_preconditions_are_refused_with_a_clear_error() -> None:
    source = watcher("      - type: io.kestra.plugin.core.condition.ExecutionStatus\n        in: [SUCCESS]",
                     extra="\n    preconditions:\n      flows: [{namespace: a, flowId: b}]")
    with pytest.raises(FlowValidationError, match="preconditions are not supported yet"):
        load_flow(source)


def test_an_unwatched_end_is_checked_in_its_own_transaction(client: Any) -> None:
    done = client.run(upstream())
    assert runtime.store().get_execution(done.id).downstream_checked is True


def test_an_upstream_context_that_cannot_render_starts_nothing_and_still_marks_the_end(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """E.g. a SECRET input this process cannot decrypt: like any rendering error, logged and skipped, so the end is
    checked and the timer loop does not retry it forever."""
    up = upstream()
    watching = client.deploy(watcher(flow_condition(up)))["id"]
    done = client.run(up)
    settled(done.id)
    assert len(started_by(client, watching, expected=1)) == 1  # offered at the end: one watcher ran, and ended
    with runtime.store().begin() as conn:
        conn.execute(executions.update().where(executions.c.id == done.id).values(downstream_checked=False))

    def unrenderable(*args: Any, **kwargs: Any) -> Any:
        raise templating.TemplateError("Cannot decrypt a SECRET input")

    monkeypatch.setattr(events, "context_factory", unrenderable)
    assert events.on_ended(runtime.store().get_execution(done.id)) == 0
    assert runtime.store().get_execution(done.id).downstream_checked
    monkeypatch.undo()
    assert len(started_by(client, watching)) == 1  # nothing more
