"""LoopUntil (and its older name WaitFor): the loop runs its tasks until the condition holds, each iteration with
runs of its own; the cases of Kestra's own tests (LoopUntilCaseTest) with the outcomes they assert."""

from __future__ import annotations

import textwrap
import time
from typing import Any

import pytest

from app.errors import FlowValidationError
from app.model.states import State

OUTPUT_VALUES = "io.kestra.plugin.core.output.OutputValues"


def flow(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


def loop(condition: str, *, kind: str = "io.kestra.plugin.core.flow.LoopUntil", extra: str = "",
         more_tasks: str = "") -> str:
    """The loop of Kestra's waitfor*.yaml test flows; `extra` goes under `checkFrequency`, `more_tasks` after the
    loop's task (both written at the loop's indentation, as in the flow below)."""
    return (
        "id: loop_until\nnamespace: core.loops\ntasks:\n"
        f"  - id: waitfor\n    type: {kind}\n    condition: \"{condition}\"\n"
        f"    checkFrequency:\n      interval: PT0.1S{extra}\n"
        f"    tasks:\n      - id: output_values\n        type: {OUTPUT_VALUES}\n        values:\n"
        f"          count: \"{{{{ outputs.waitfor.iterationCount + 1 }}}}\"{more_tasks}\n"
    )


def runs_of(ex: Any, task_id: str) -> list[Any]:
    return [run for run in ex.task_runs if run.task_id == task_id]


def test_it_loops_until_the_condition_holds_with_a_run_per_iteration(client: Any) -> None:
    ex = client.run(loop("{{ outputs.output_values.values.count == '4' }}"), wait=True, timeout=60)
    assert ex.state == State.SUCCESS, ex.to_json()
    [waitfor] = runs_of(ex, "waitfor")
    assert waitfor.outputs == {"iterationCount": 3}
    iterations = runs_of(ex, "output_values")
    assert [(r.iteration, r.outputs["values"]["count"], r.state) for r in iterations] == [
        (1, "2", State.SUCCESS), (2, "3", State.SUCCESS), (3, "4", State.SUCCESS)]
    assert iterations[1].started >= iterations[0].ended  # one iteration after the other, `interval` apart


def test_a_condition_true_at_once_runs_one_iteration_and_wait_for_is_the_same_task(client: Any) -> None:
    ex = client.run(loop("{{ outputs.output_values.values.count != '4' }}", kind="io.kestra.plugin.core.flow.WaitFor"),
                    wait=True, timeout=60)
    assert ex.state == State.SUCCESS and runs_of(ex, "waitfor")[0].outputs == {"iterationCount": 1}
    assert len(runs_of(ex, "output_values")) == 1


def test_max_iterations_stops_the_loop_and_fails_it_when_asked(client: Any) -> None:
    never = "{{ outputs.output_values.values.count == '10' }}"
    failing = client.run(loop(never, extra="\n      maxIterations: 3\n    failOnMaxReached: true"), wait=True,
                         timeout=60)
    assert failing.state == State.FAILED
    [waitfor] = runs_of(failing, "waitfor")
    assert waitfor.outputs == {"iterationCount": 3} and "maxIterations (3) reached" in (waitfor.error or "")
    assert len(runs_of(failing, "output_values")) == 3
    quiet = client.run(loop(never, extra="\n      maxIterations: 2"), wait=True, timeout=60)
    assert quiet.state == State.SUCCESS and len(runs_of(quiet, "output_values")) == 2  # a warning, said in the logs
    assert any("maxIterations (2) reached" in line["message"] for line in client.logs(quiet.id))


def test_max_duration_stops_the_loop(client: Any) -> None:
    started = time.monotonic()
    ex = client.run(loop("{{ false }}", extra="\n      maxDuration: PT1S\n    failOnMaxReached: true"), wait=True,
                    timeout=60)
    assert ex.state == State.FAILED and "maxDuration" in (runs_of(ex, "waitfor")[0].error or "")
    assert time.monotonic() - started >= 1
    assert len(runs_of(ex, "output_values")) >= 2


def test_a_failed_task_ends_the_loop_failed_after_one_attempt(client: Any) -> None:
    fail = "\n      - id: fail\n        type: io.kestra.plugin.core.execution.Fail"
    ex = client.run(loop("{{ outputs.output_values.values.count == '6' }}", more_tasks=fail), wait=True, timeout=60)
    assert ex.state == State.FAILED
    assert runs_of(ex, "waitfor")[0].outputs == {"iterationCount": 1}
    [failed] = runs_of(ex, "fail")
    assert failed.state == State.FAILED and len(failed.attempts) == 1


def test_each_iteration_sees_only_its_own_outputs(client: Any) -> None:
    # `skip_odd` runs only on even iterations: on an odd one, the previous iteration's output is not visible.
    source = flow("""
        id: own_outputs
        namespace: core.loops
        tasks:
          - id: loop
            type: io.kestra.plugin.core.flow.LoopUntil
            condition: "{{ outputs.loop.iterationCount >= 3 }}"
            checkFrequency:
              interval: PT0.1S
            tasks:
              - id: skip_odd
                type: io.kestra.plugin.core.debug.Return
                runIf: "{{ outputs.loop.iterationCount % 2 == 0 }}"
                format: "even {{ outputs.loop.iterationCount }}"
              - id: seen
                type: io.kestra.plugin.core.debug.Return
                format: "{{ outputs.skip_odd.value ?? 'nothing' }}"
        """)
    ex = client.run(source, wait=True, timeout=60)
    assert ex.state == State.SUCCESS, ex.to_json()
    assert [r.outputs["value"] for r in runs_of(ex, "seen")] == ["nothing", "even 2", "nothing"]


def test_a_nested_loop_starts_afresh_in_each_outer_iteration(client: Any) -> None:
    source = flow("""
        id: nested_loops
        namespace: core.loops
        tasks:
          - id: outer
            type: io.kestra.plugin.core.flow.LoopUntil
            condition: "{{ outputs.outer.iterationCount >= 2 }}"
            checkFrequency:
              interval: PT0.1S
            tasks:
              - id: inner
                type: io.kestra.plugin.core.flow.LoopUntil
                condition: "{{ outputs.inner.iterationCount >= 3 }}"
                checkFrequency:
                  interval: PT0.1S
                tasks:
                  - id: step
                    type: io.kestra.plugin.core.debug.Return
                    format: "{{ outputs.outer.iterationCount }}.{{ outputs.inner.iterationCount }}"
        """)
    ex = client.run(source, wait=True, timeout=60)
    assert ex.state == State.SUCCESS, ex.to_json()
    assert [r.outputs["value"] for r in runs_of(ex, "step")] == ["1.1", "1.2", "1.3", "2.1", "2.2", "2.3"]
    assert [r.outputs for r in runs_of(ex, "inner")] == [{"iterationCount": 3}, {"iterationCount": 3}]


def test_a_kill_between_two_iterations_ends_the_loop(client: Any) -> None:
    ex = client.run(loop("{{ false }}", extra="").replace("PT0.1S", "PT30S"), wait=False)
    deadline = time.monotonic() + 30
    while not runs_of(client.get(ex.id), "output_values") or \
            runs_of(client.get(ex.id), "output_values")[0].state != State.SUCCESS:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    client.cancel(ex.id)
    ended = client.wait(ex.id, timeout=30)
    assert ended.state == State.KILLED and runs_of(ended, "waitfor")[0].state == State.KILLED
    assert runs_of(ended, "waitfor")[0].next_at is None  # no timer left behind on an ended run


@pytest.mark.parametrize(("extra", "expected"), [
    ("\n      maxIterations: 0", "greater than 0"),
    ("\n      interval: PT0S", "must be a positive duration"),
    ("\n      every: PT1S", "unknown property"),
])
def test_bad_check_frequencies_are_refused(client: Any, extra: str, expected: str) -> None:
    with pytest.raises(FlowValidationError, match=expected):
        client.validate(loop("{{ true }}", extra=extra))
