"""A flow's `sla`: MAX_DURATION and EXECUTION_ASSERTION, with behaviors FAIL, CANCEL and NONE and their labels.
(Kestra's own sla-execution-condition.yaml runs in tests/conformance.)"""

from __future__ import annotations

import textwrap
import time
from typing import Any

import pytest

from app.errors import FlowValidationError
from app.model.states import State


def flow(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


def test_max_duration_cancels_a_long_execution_and_labels_it(client: Any) -> None:
    source = flow("""
        id: sla_cancel
        namespace: core.sla
        sla:
          - id: maxDuration
            type: MAX_DURATION
            duration: PT1S
            behavior: CANCEL
            labels:
              sla: miss
        tasks:
          - id: punctual
            type: io.kestra.plugin.core.log.Log
            message: started
          - id: sleepyhead
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT30S
          - id: never_executed_task
            type: io.kestra.plugin.core.log.Log
            message: never
        """)
    started = time.monotonic()
    ex = client.run(source, wait=True, timeout=30)
    assert ex.state == State.CANCELLED, ex.to_json()
    assert 1 <= time.monotonic() - started < 15  # the sla's own timer ended it, not the sleep
    assert ex.labels["sla"] == "miss" and "SLA 'maxDuration' breached" in (ex.error or "")
    states = {run.task_id: run.state for run in ex.task_runs}
    assert states == {"punctual": State.SUCCESS, "sleepyhead": State.KILLED}


def test_a_breach_with_behavior_none_only_labels_the_execution(client: Any) -> None:
    source = flow("""
        id: sla_none
        namespace: core.sla
        sla:
          - id: slow
            type: MAX_DURATION
            duration: PT0.3S
            behavior: NONE
            labels:
              - key: sla
                value: late
        tasks:
          - id: nap
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT1.5S
          - id: after
            type: io.kestra.plugin.core.debug.Return
            format: done
        """)
    ex = client.run(source, wait=True, timeout=30)
    assert ex.state == State.SUCCESS and ex.labels["sla"] == "late", ex.to_json()
    breaches = [row["message"] for row in client.logs(ex.id) if "SLA 'slow' breached" in row["message"]]
    assert len(breaches) == 1  # said once, however many steps follow


def test_an_assertion_on_outputs_fails_the_execution_at_the_step_it_breaks(client: Any) -> None:
    source = flow("""
        id: sla_assert
        namespace: core.sla
        sla:
          - id: sane
            type: EXECUTION_ASSERTION
            assert: "{{ (outputs.first.value ?? 'ok') != 'bad' }}"
        tasks:
          - id: first
            type: io.kestra.plugin.core.debug.Return
            format: bad
          - id: second
            type: io.kestra.plugin.core.debug.Return
            format: never
        """)
    ex = client.run(source, wait=True, timeout=30)
    assert ex.state == State.FAILED and [run.task_id for run in ex.task_runs] == ["first"], ex.to_json()
    assert "SLA 'sane' breached: the assertion" in (ex.error or "")


@pytest.mark.parametrize(("sla", "message"), [
    ("{id: a, type: MAX_DURATION}", "a MAX_DURATION sla needs `duration`"),
    ("{id: a, type: EXECUTION_ASSERTION, behavior: CANCEL}", "an EXECUTION_ASSERTION sla needs `assert`"),
    ("{id: a, type: MAX_DURATION, duration: PT1H, behavior: WARN}", "behavior"),
])
def test_a_bad_sla_is_refused(client: Any, sla: str, message: str) -> None:
    with pytest.raises(FlowValidationError, match=message):
        client.validate(f"id: bad_sla\nnamespace: core.sla\nsla:\n  - {sla}\ntasks:\n  - id: t\n"
                        "    type: io.kestra.plugin.core.debug.Return\n    format: x\n")
