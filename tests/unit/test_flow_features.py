"""Flow features run end to end in embedded mode (in-memory broker, in-process worker, SQLite)."""

from __future__ import annotations

import base64
import textwrap
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from app import runtime
from app.model.records import Execution, TaskRun
from app.model.states import State

HELLO = Path(__file__).resolve().parents[2] / "flows" / "hello.yaml"
NS = "unit.features"
WAIT = 30.0  # seconds: generous upper bound for an execution to end; the flows below end far sooner


def flow(text: str) -> str:
    """Dedented flow YAML (always several lines, so Client.run() reads it as YAML, not as a path)."""
    return textwrap.dedent(text).strip() + "\n"


def runs_of(ex: Execution, task_id: str) -> list[TaskRun]:
    return [run for run in ex.task_runs if run.task_id == task_id]


def run_of(ex: Execution, task_id: str) -> TaskRun:
    found = runs_of(ex, task_id)
    assert len(found) == 1, f"expected one run of {task_id!r}, got {[(r.value, r.state) for r in found]}"
    return found[0]


def poll(client: Any, execution_id: str, until: Callable[[Execution], bool], timeout: float = WAIT) -> Execution:
    """The execution as soon as `until` holds for it (fails after `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        ex = client.get(execution_id)
        if until(ex):
            return ex
        assert time.monotonic() < deadline, f"condition not reached; execution is {ex.state}: {ex.to_json()}"
        time.sleep(0.02)


def messages(client: Any, execution_id: str) -> list[str]:
    return [row["message"] for row in client.logs(execution_id)]


# -- pause / resume ---------------------------------------------------------------------------------------------
PAUSE_FLOW = """
    id: pause_{name}
    namespace: unit.features
    tasks:
      - id: before
        type: io.kestra.plugin.core.log.Log
        message: before the pause
      - id: wait
        type: io.kestra.plugin.core.flow.Pause
        {delay}
      - id: after
        type: io.kestra.plugin.core.debug.Return
        format: "resumed {{{{ outputs.wait is defined }}}}"
"""


def test_pause_without_delay_waits_for_resume(client: Any) -> None:
    ex = client.run(flow(PAUSE_FLOW.format(name="manual", delay="")), wait=False)
    paused = poll(client, ex.id, lambda e: any(r.task_id == "wait" and r.state == State.PAUSED for r in e.task_runs))
    assert not paused.state.terminal
    assert runs_of(paused, "after") == []
    time.sleep(0.3)  # several timer ticks: a pause without delay must not resume by itself
    still = client.get(ex.id)
    assert not still.state.terminal
    assert run_of(still, "wait").state == State.PAUSED
    assert runs_of(still, "after") == []

    assert client.resume(ex.id) is True
    done = client.wait(ex.id, WAIT)
    assert done.state == State.SUCCESS
    assert run_of(done, "wait").state == State.SUCCESS
    assert run_of(done, "after").state == State.SUCCESS
    assert run_of(done, "after").outputs["value"].startswith("resumed")


def test_paused_execution_is_in_state_paused(client: Any) -> None:
    ex = client.run(flow(PAUSE_FLOW.format(name="state", delay="")), wait=False)
    poll(client, ex.id, lambda e: any(r.task_id == "wait" and r.state == State.PAUSED for r in e.task_runs))
    try:
        assert client.get(ex.id).state == State.PAUSED
    finally:
        client.resume(ex.id)
        assert client.wait(ex.id, WAIT).state == State.SUCCESS


def test_resume_of_an_execution_with_nothing_paused_says_so(client: Any) -> None:
    ex = client.run(HELLO)
    assert ex.state == State.SUCCESS
    assert client.resume(ex.id) is False


def test_pause_with_delay_resumes_by_itself(client: Any) -> None:
    started = time.monotonic()
    ex = client.run(flow(PAUSE_FLOW.format(name="delayed", delay="delay: PT0.5S")), timeout=WAIT)
    elapsed = time.monotonic() - started
    assert ex.state == State.SUCCESS
    assert run_of(ex, "after").state == State.SUCCESS
    wait = run_of(ex, "wait")
    assert wait.state == State.SUCCESS
    assert wait.started is not None and wait.ended is not None
    assert wait.ended - wait.started >= timedelta(seconds=0.5)
    assert run_of(ex, "after").started >= wait.ended
    assert elapsed >= 0.5


# -- Exit -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("state", ["KILLED", "WARNING"])
def test_exit_ends_the_execution_in_its_state(client: Any, state: str) -> None:
    ex = client.run(flow(f"""
        id: exit_{state.lower()}
        namespace: unit.features
        tasks:
          - id: first
            type: io.kestra.plugin.core.log.Log
            message: first
          - id: stop
            type: io.kestra.plugin.core.execution.Exit
            state: {state}
          - id: never
            type: io.kestra.plugin.core.log.Log
            message: must not run
    """), timeout=WAIT)
    assert ex.state == State(state)
    assert run_of(ex, "first").state == State.SUCCESS
    assert runs_of(ex, "never") == []
    time.sleep(0.2)  # nothing is started after the end either
    assert runs_of(client.get(ex.id), "never") == []
    assert "must not run" not in messages(client, ex.id)


def test_exit_with_a_false_condition_lets_the_flow_go_on(client: Any) -> None:
    ex = client.run(flow("""
        id: exit_condition
        namespace: unit.features
        tasks:
          - id: stop
            type: io.kestra.plugin.core.execution.Exit
            state: KILLED
            condition: "{{ 1 == 2 }}"
          - id: next
            type: io.kestra.plugin.core.debug.Return
            format: ran
    """), timeout=WAIT)
    assert ex.state == State.SUCCESS
    assert run_of(ex, "next").outputs == {"value": "ran"}


# -- key-value store --------------------------------------------------------------------------------------------
def test_kv_set_then_get_and_kv_function(client: Any) -> None:
    ex = client.run(flow("""
        id: kv_roundtrip
        namespace: unit.features
        tasks:
          - id: put
            type: io.kestra.plugin.core.kv.Set
            key: "unit_greeting"
            value: "hello from {{ flow.id }}"
          - id: put_map
            type: io.kestra.plugin.core.kv.Set
            key: unit_map
            value:
              answer: 42
              names: [a, b]
          - id: get
            type: io.kestra.plugin.core.kv.Get
            key: unit_greeting
          - id: get_missing
            type: io.kestra.plugin.core.kv.Get
            key: unit_never_set
          - id: by_function
            type: io.kestra.plugin.core.debug.Return
            format: "{{ kv('unit_greeting') }} / {{ kv('unit_map').answer }}"
    """), timeout=WAIT)
    assert ex.state == State.SUCCESS, ex.to_json()
    assert run_of(ex, "get").outputs == {"value": "hello from kv_roundtrip"}
    assert run_of(ex, "get_missing").outputs == {"value": None}
    assert run_of(ex, "by_function").outputs["value"] == "hello from kv_roundtrip / 42"
    assert runtime.store().kv_get(NS, "unit_greeting") == "hello from kv_roundtrip"
    assert runtime.store().kv_get(NS, "unit_map") == {"answer": 42, "names": ["a", "b"]}


def test_kv_get_error_on_missing_fails_the_task(client: Any) -> None:
    ex = client.run(flow("""
        id: kv_missing
        namespace: unit.features
        tasks:
          - id: get
            type: io.kestra.plugin.core.kv.Get
            key: unit_absent_key
            errorOnMissing: true
    """), timeout=WAIT)
    assert ex.state == State.FAILED
    assert "unit_absent_key" in (run_of(ex, "get").error or "")


# -- timeout, cancel, retry -------------------------------------------------------------------------------------
def test_timeout_fails_a_long_task_quickly(client: Any) -> None:
    started = time.monotonic()
    ex = client.run(flow("""
        id: timeout
        namespace: unit.features
        tasks:
          - id: slow
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT5S
            timeout: PT0.5S
          - id: never
            type: io.kestra.plugin.core.log.Log
            message: never
    """), timeout=WAIT)
    elapsed = time.monotonic() - started
    assert ex.state == State.FAILED
    slow = run_of(ex, "slow")
    assert slow.state == State.FAILED
    assert "timed out" in (slow.error or "").lower()
    assert any("timed out" in m.lower() for m in messages(client, ex.id))
    assert runs_of(ex, "never") == []
    assert 0.5 <= elapsed < 4


def test_cancel_kills_a_running_sleep(client: Any) -> None:
    ex = client.run(flow("""
        id: cancel
        namespace: unit.features
        tasks:
          - id: slow
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT20S
          - id: never
            type: io.kestra.plugin.core.log.Log
            message: never
    """), wait=False)
    poll(client, ex.id, lambda e: any(r.task_id == "slow" and r.state == State.RUNNING for r in e.task_runs))
    cancelled_at = time.monotonic()
    client.cancel(ex.id)
    done = client.wait(ex.id, WAIT)
    assert done.state == State.KILLED
    assert run_of(done, "slow").state == State.KILLED
    assert runs_of(done, "never") == []
    assert time.monotonic() - cancelled_at < 5


def test_retry_exponential_counts_attempts_and_backs_off(client: Any) -> None:
    ex = client.run(flow("""
        id: retry_exponential
        namespace: unit.features
        tasks:
          - id: flaky
            type: io.kestra.plugin.core.execution.Fail
            errorMessage: "boom on attempt {{ taskrun.attemptsCount }}"
            retry:
              type: exponential
              interval: PT0.1S
              maxInterval: PT1S
              delayFactor: 2
              maxAttempt: 3
    """), timeout=WAIT)
    assert ex.state == State.FAILED
    flaky = run_of(ex, "flaky")
    assert flaky.state == State.FAILED
    assert len(flaky.attempts) == 3
    assert [a.state for a in flaky.attempts] == [State.FAILED] * 3
    errors = [m for m in messages(client, ex.id) if m.startswith("boom on attempt")]
    assert errors == ["boom on attempt 0", "boom on attempt 1", "boom on attempt 2"]
    # exponential: 0.1 s before the second attempt, 0.2 s before the third
    gaps = [(flaky.attempts[i + 1].start - flaky.attempts[i].end).total_seconds() for i in range(2)]
    assert gaps[0] >= 0.1 - 0.005
    assert gaps[1] >= 0.2 - 0.005


def test_retry_until_success(client: Any) -> None:
    ex = client.run(flow("""
        id: retry_until_success
        namespace: unit.features
        tasks:
          - id: flaky
            type: io.kestra.plugin.core.execution.Fail
            condition: "{{ taskrun.attemptsCount < 2 }}"
            retry:
              type: constant
              interval: PT0.01S
              maxAttempt: 5
          - id: next
            type: io.kestra.plugin.core.debug.Return
            format: ok
    """), timeout=WAIT)
    assert ex.state == State.SUCCESS
    flaky = run_of(ex, "flaky")
    assert [a.state for a in flaky.attempts] == [State.FAILED, State.FAILED, State.SUCCESS]
    assert run_of(ex, "next").outputs == {"value": "ok"}


# -- loops ------------------------------------------------------------------------------------------------------
def test_foreach_with_concurrency_limit_runs_every_value(client: Any) -> None:
    ex = client.run(flow("""
        id: foreach_limit
        namespace: unit.features
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: ["a", "b", "c", "d", "e"]
            concurrencyLimit: 2
            tasks:
              - id: nap
                type: io.kestra.plugin.core.flow.Sleep
                duration: PT0.1S
              - id: item
                type: io.kestra.plugin.core.debug.Return
                format: "{{ taskrun.value }}"
    """), timeout=WAIT)
    assert ex.state == State.SUCCESS
    items = runs_of(ex, "item")
    assert sorted(r.value for r in items) == ["a", "b", "c", "d", "e"]
    assert all(r.outputs["value"] == r.value for r in items)
    assert len(runs_of(ex, "nap")) == 5
    # never more than 2 iterations at once: at every iteration start, at most 2 iterations are open
    spans = []
    for value in "abcde":
        nap = next(r for r in runs_of(ex, "nap") if r.value == value)
        item = next(r for r in items if r.value == value)
        spans.append((nap.started, item.ended))
    for start, _ in spans:
        open_at_start = sum(1 for s, e in spans if s <= start < e)
        assert open_at_start <= 2, spans


NESTED_LOOPS = """
    id: nested_{name}
    namespace: unit.features
    tasks:
      - id: outer
        type: io.kestra.plugin.core.flow.ForEach
        values: {outer}
        concurrencyLimit: 0
        tasks:
          - id: inner
            type: io.kestra.plugin.core.flow.ForEach
            values: {inner}
            tasks:
              - id: t
                type: io.kestra.plugin.core.debug.Return
                format: "{{{{ parents[0].taskrun.value }}}}-{{{{ taskrun.value }}}}"
      - id: pick
        type: io.kestra.plugin.core.debug.Return
        format: "{{{{ outputs.t['y']['2'].value }}}} {{{{ outputs.t.x['1'].value }}}}"
"""


def test_nested_foreach_outputs_and_parents(client: Any) -> None:
    ex = client.run(flow(NESTED_LOOPS.format(name="xy", outer='["x", "y"]', inner='["1", "2"]')), timeout=WAIT)
    assert ex.state == State.SUCCESS, ex.to_json()
    got = sorted((r.values[0], r.value, r.outputs["value"]) for r in runs_of(ex, "t"))
    assert got == [("x", "1", "x-1"), ("x", "2", "x-2"), ("y", "1", "y-1"), ("y", "2", "y-2")]
    assert run_of(ex, "pick").outputs["value"] == "y-2 x-1"


def test_nested_loops_with_equal_values_keep_every_parent_level(client: Any) -> None:
    ex = client.run(flow("""
        id: nested_same_values
        namespace: unit.features
        tasks:
          - id: l1
            type: io.kestra.plugin.core.flow.ForEach
            values: ["a"]
            tasks:
              - id: l2
                type: io.kestra.plugin.core.flow.ForEach
                values: ["a"]
                tasks:
                  - id: l3
                    type: io.kestra.plugin.core.flow.ForEach
                    values: ["b"]
                    tasks:
                      - id: t
                        type: io.kestra.plugin.core.debug.Return
                        format: "{{ parents | length }}:{{ parents[0].taskrun.value }}:{{ parents[1].taskrun.value }}"
    """), timeout=WAIT)
    assert ex.state == State.SUCCESS, ex.to_json()
    assert run_of(ex, "t").outputs["value"] == "2:a:a"


# -- Dag --------------------------------------------------------------------------------------------------------
def test_dag_starts_a_task_only_after_its_dependencies_ended(client: Any) -> None:
    ex = client.run(flow("""
        id: dag
        namespace: unit.features
        tasks:
          - id: dag
            type: io.kestra.plugin.core.flow.Dag
            tasks:
              - task:
                  id: d
                  type: io.kestra.plugin.core.debug.Return
                  format: d
                dependsOn: [b, c]
              - task:
                  id: b
                  type: io.kestra.plugin.core.flow.Sleep
                  duration: PT0.1S
                dependsOn: [a]
              - task:
                  id: a
                  type: io.kestra.plugin.core.flow.Sleep
                  duration: PT0.1S
              - task:
                  id: c
                  type: io.kestra.plugin.core.flow.Sleep
                  duration: PT0.2S
                dependsOn: [a]
    """), timeout=WAIT)
    assert ex.state == State.SUCCESS, ex.to_json()
    a, b, c, d = (run_of(ex, t) for t in "abcd")
    assert all(r.state == State.SUCCESS and r.started and r.ended for r in (a, b, c, d))
    assert b.started >= a.ended
    assert c.started >= a.ended
    assert d.started >= max(b.ended, c.ended)
    # b and c only depend on a: they run side by side
    assert b.started < c.ended and c.started < b.ended


# -- subflows ---------------------------------------------------------------------------------------------------
CHILD = """
    id: child
    namespace: unit.features
    inputs:
      - id: who
        type: STRING
    tasks:
      - id: hi
        type: io.kestra.plugin.core.debug.Return
        format: "hi {{ inputs.who }}"
    outputs:
      - id: greeting
        type: STRING
        value: "{{ outputs.hi.value }}"
"""


def test_subflow_waits_and_exposes_the_child_outputs(client: Any) -> None:
    client.deploy(flow(CHILD))
    ex = client.run(flow("""
        id: parent
        namespace: unit.features
        tasks:
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: unit.features
            flowId: child
            wait: true
            inputs:
              who: "{{ flow.id }}"
          - id: use
            type: io.kestra.plugin.core.debug.Return
            format: "{{ outputs.call.outputs.greeting }}"
    """), timeout=WAIT)
    assert ex.state == State.SUCCESS, ex.to_json()
    call = run_of(ex, "call")
    assert call.state == State.SUCCESS
    assert call.outputs["outputs"] == {"greeting": "hi parent"}
    assert run_of(ex, "use").outputs == {"value": "hi parent"}
    child = client.get(call.outputs["executionId"])
    assert child.flow_id == "child"
    assert child.state == State.SUCCESS
    assert child.parent_execution_id == ex.id
    assert child.inputs == {"who": "parent"}
    # the parent only went on once the child had ended
    assert run_of(ex, "use").started >= child.ended


def test_subflow_task_outputs_are_rendered_against_the_child(client: Any) -> None:
    client.deploy(flow(CHILD))
    ex = client.run(flow("""
        id: parent_outputs
        namespace: unit.features
        tasks:
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: unit.features
            flowId: child
            inputs:
              who: Ada
            outputs:
              shout: "{{ outputs.hi.value | upper }}"
    """), timeout=WAIT)
    assert ex.state == State.SUCCESS, ex.to_json()
    assert run_of(ex, "call").outputs["outputs"] == {"shout": "HI ADA"}


def test_missing_subflow_fails_the_subflow_task_naming_the_flow(client: Any) -> None:
    ex = client.run(flow("""
        id: parent_missing
        namespace: unit.features
        tasks:
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: unit.features
            flowId: does_not_exist
          - id: after
            type: io.kestra.plugin.core.log.Log
            message: never
    """), timeout=WAIT)
    assert ex.state == State.FAILED
    call = run_of(ex, "call")
    assert call.state == State.FAILED
    assert "unit.features.does_not_exist" in (call.error or "")
    assert any("does_not_exist" in m for m in messages(client, ex.id))
    assert runs_of(ex, "after") == []


# -- secrets ----------------------------------------------------------------------------------------------------
def test_secret_from_env_is_masked_in_logs(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    value = "pa55-unit-w0rd"
    monkeypatch.setenv("SECRET_UNIT_PASSWORD", base64.b64encode(value.encode()).decode())
    ex = client.run(flow("""
        id: secret
        namespace: unit.features
        tasks:
          - id: show
            type: io.kestra.plugin.core.log.Log
            message: "password is {{ secret('UNIT_PASSWORD') }}"
          - id: length
            type: io.kestra.plugin.core.debug.Return
            format: "{{ secret('UNIT_PASSWORD') | length }}"
    """), timeout=WAIT)
    assert ex.state == State.SUCCESS, ex.to_json()
    lines = messages(client, ex.id)
    assert "password is ********" in lines
    assert not any(value in line for line in lines)
    assert run_of(ex, "length").outputs["value"] == str(len(value))


def test_missing_secret_fails_the_task_naming_it(client: Any) -> None:
    ex = client.run(flow("""
        id: secret_missing
        namespace: unit.features
        tasks:
          - id: show
            type: io.kestra.plugin.core.log.Log
            message: "{{ secret('UNIT_NEVER_DEFINED') }}"
    """), timeout=WAIT)
    assert ex.state == State.FAILED
    assert "SECRET_UNIT_NEVER_DEFINED" in (run_of(ex, "show").error or "")


# -- allowFailure, disabled, outputs, labels --------------------------------------------------------------------
def test_allow_failure_ends_in_warning_and_the_flow_goes_on(client: Any) -> None:
    ex = client.run(flow("""
        id: allow_failure
        namespace: unit.features
        tasks:
          - id: broken
            type: io.kestra.plugin.core.execution.Fail
            errorMessage: expected failure
            allowFailure: true
          - id: next
            type: io.kestra.plugin.core.debug.Return
            format: went on
    """), timeout=WAIT)
    assert ex.state == State.WARNING
    assert run_of(ex, "broken").state == State.WARNING
    assert run_of(ex, "next").state == State.SUCCESS
    assert run_of(ex, "next").outputs == {"value": "went on"}


def test_disabled_task_never_runs(client: Any) -> None:
    ex = client.run(flow("""
        id: disabled
        namespace: unit.features
        tasks:
          - id: switched_off
            type: io.kestra.plugin.core.execution.Fail
            disabled: true
          - id: still_on
            type: io.kestra.plugin.core.debug.Return
            format: "{{ outputs.switched_off is defined }}"
    """), timeout=WAIT)
    assert ex.state == State.SUCCESS
    assert runs_of(ex, "switched_off") == []
    assert run_of(ex, "still_on").outputs == {"value": "false"}


def test_flow_outputs_are_rendered(client: Any) -> None:
    ex = client.run(HELLO, inputs={"name": "Grace", "times": "3"}, timeout=WAIT)
    assert ex.state == State.SUCCESS
    assert ex.inputs == {"name": "Grace", "times": 3}
    assert ex.outputs == {"message": "GRACE was greeted 3 times"}


def test_flow_outputs_that_cannot_render_fail_the_execution(client: Any) -> None:
    ex = client.run(flow("""
        id: bad_outputs
        namespace: unit.features
        tasks:
          - id: one
            type: io.kestra.plugin.core.debug.Return
            format: one
        outputs:
          - id: broken
            type: STRING
            value: "{{ outputs.one.nope }}"
    """), timeout=WAIT)
    assert ex.state == State.FAILED
    assert "outputs" in (ex.error or "").lower()


def test_flow_outputs_take_their_declared_type(client: Any) -> None:
    source = """
        id: typed_outputs
        namespace: unit.features
        tasks:
          - id: n
            type: io.kestra.plugin.core.debug.Return
            format: "49"
        outputs:
          - id: total
            type: INT
            value: "{{ outputs.n.value }}"
          - id: ratio
            type: FLOAT
            value: "{{ outputs.n.value }}.5"
          - id: flag
            type: BOOLEAN
            value: "true"
          - id: text
            type: STRING
            value: "{{ outputs.n.value }}"
    """
    ex = client.run(flow(source), timeout=WAIT)
    assert ex.state == State.SUCCESS
    assert ex.outputs == {"total": 49, "ratio": 49.5, "flag": True, "text": "49"}
    wrong = client.run(flow(source.replace("typed_outputs", "typed_outputs_bad").replace('format: "49"',
                                                                                          'format: "many"')),
                       timeout=WAIT)
    assert wrong.state == State.FAILED
    assert "Output 'total' is not a valid INT" in (wrong.error or "")


def test_labels_task_sets_execution_labels(client: Any) -> None:
    ex = client.run(flow("""
        id: labels
        namespace: unit.features
        labels:
          team: data
        tasks:
          - id: tag
            type: io.kestra.plugin.core.execution.Labels
            labels:
              env: test
              flow: "{{ flow.id }}"
    """), timeout=WAIT)
    assert ex.state == State.SUCCESS
    assert ex.labels == {"team": "data", "env": "test", "flow": "labels"}
    assert client.get(ex.id).labels["env"] == "test"
    assert ex.to_json()["labels"]["flow"] == "labels"


# -- WorkingDirectory -------------------------------------------------------------------------------------------
def test_working_directory_with_local_files(client: Any) -> None:
    ex = client.run(flow("""
        id: working_directory
        namespace: unit.features
        tasks:
          - id: wd
            type: io.kestra.plugin.core.flow.WorkingDirectory
            tasks:
              - id: write
                type: io.kestra.plugin.core.storage.LocalFiles
                inputs:
                  data.txt: "hello from {{ flow.id }}"
                  sub/rows.csv: "a,b"
              - id: export
                type: io.kestra.plugin.core.storage.LocalFiles
                outputs:
                  - "*.txt"
                  - "sub/*.csv"
          - id: read_back
            type: io.kestra.plugin.core.debug.Return
            format: "{{ read(outputs.export.uris['data.txt']) }}"
    """), timeout=WAIT)
    assert ex.state == State.SUCCESS, ex.to_json()
    uris = run_of(ex, "export").outputs["uris"]
    assert set(uris) == {"data.txt", "sub/rows.csv"}
    assert all(uri.startswith("kestra://") for uri in uris.values())
    storage = runtime.storage()
    assert storage.get(uris["data.txt"]) == b"hello from working_directory"
    assert storage.get(uris["sub/rows.csv"]) == b"a,b"
    assert run_of(ex, "read_back").outputs == {"value": "hello from working_directory"}
    # the children ran as task runs of the working directory
    wd = run_of(ex, "wd")
    assert run_of(ex, "write").parent_id == wd.id
    assert run_of(ex, "export").parent_id == wd.id


# -- worker groups ----------------------------------------------------------------------------------------------
WORKER_GROUP_FLOW = """
    id: templated_group
    namespace: unit.features
    inputs:
      - id: group
        type: STRING
    tasks:
      - id: placed
        type: io.kestra.plugin.core.debug.Return
        format: "{{ taskrun.id }}"
        workerGroup:
          key: "{{ inputs.group }}"
      - id: default
        type: io.kestra.plugin.core.debug.Return
        format: x
"""


def test_templated_worker_group_is_rendered_and_served_embedded(client: Any) -> None:
    ex = client.run(flow(WORKER_GROUP_FLOW), inputs={"group": "unit-gpu"}, timeout=WAIT)
    assert ex.state == State.SUCCESS, ex.to_json()
    assert run_of(ex, "placed").worker_group == "unit-gpu"
    assert run_of(ex, "default").worker_group is None
    assert ex.to_json()["taskRuns"][0]["workerGroup"] == "unit-gpu"


def test_templated_worker_group_rendering_to_a_bad_key_fails_the_task(client: Any) -> None:
    ex = client.run(flow(WORKER_GROUP_FLOW), inputs={"group": "bad key!"}, timeout=WAIT)
    placed = run_of(ex, "placed")
    assert placed.state == State.FAILED
    assert "bad key!" in (placed.error or "")


# -- more cancellation, failure and masking cases ----------------------------------------------------------------
def test_secret_is_masked_in_a_failure_message(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    value = "t0p-unit-secret"
    monkeypatch.setenv("SECRET_UNIT_TOKEN", base64.b64encode(value.encode()).decode())
    ex = client.run(flow("""
        id: secret_in_error
        namespace: unit.features
        tasks:
          - id: leak
            type: io.kestra.plugin.core.execution.Fail
            errorMessage: "token {{ secret('UNIT_TOKEN') }} rejected"
    """), timeout=WAIT)
    assert ex.state == State.FAILED
    assert run_of(ex, "leak").error == "token ******** rejected"
    lines = messages(client, ex.id)
    assert "token ******** rejected" in lines
    assert not any(value in line for line in lines)


def test_cancel_a_paused_execution(client: Any) -> None:
    ex = client.run(flow(PAUSE_FLOW.format(name="cancelled", delay="")), wait=False)
    poll(client, ex.id, lambda e: any(r.task_id == "wait" and r.state == State.PAUSED for r in e.task_runs))
    client.cancel(ex.id)
    done = client.wait(ex.id, WAIT)
    assert done.state == State.KILLED
    assert run_of(done, "wait").state == State.KILLED
    assert runs_of(done, "after") == []
    assert client.resume(ex.id) is False


def test_cancel_during_a_retry_delay_does_not_wait_for_it(client: Any) -> None:
    ex = client.run(flow("""
        id: cancel_retrying
        namespace: unit.features
        tasks:
          - id: flaky
            type: io.kestra.plugin.core.execution.Fail
            retry:
              type: constant
              interval: PT30S
              maxAttempt: 3
    """), wait=False)
    poll(client, ex.id, lambda e: any(r.task_id == "flaky" and r.state == State.RETRYING for r in e.task_runs))
    started = time.monotonic()
    client.cancel(ex.id)
    done = client.wait(ex.id, WAIT)
    assert time.monotonic() - started < 5
    assert done.state == State.KILLED
    assert run_of(done, "flaky").state == State.KILLED
    assert len(run_of(done, "flaky").attempts) == 1


def test_timeout_counts_as_a_failed_attempt_and_is_retried(client: Any) -> None:
    ex = client.run(flow("""
        id: timeout_retry
        namespace: unit.features
        tasks:
          - id: slow
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT10S
            timeout: PT0.2S
            retry:
              type: constant
              interval: PT0.05S
              maxAttempt: 2
    """), timeout=WAIT)
    assert ex.state == State.FAILED
    slow = run_of(ex, "slow")
    assert [a.state for a in slow.attempts] == [State.FAILED, State.FAILED]
    assert "timed out" in (slow.error or "")


def test_allow_failure_on_a_flowable(client: Any) -> None:
    ex = client.run(flow("""
        id: allow_failure_flowable
        namespace: unit.features
        tasks:
          - id: group
            type: io.kestra.plugin.core.flow.Sequential
            allowFailure: true
            tasks:
              - id: broken
                type: io.kestra.plugin.core.execution.Fail
              - id: skipped
                type: io.kestra.plugin.core.log.Log
                message: never
          - id: next
            type: io.kestra.plugin.core.debug.Return
            format: went on
    """), timeout=WAIT)
    assert ex.state == State.WARNING
    assert run_of(ex, "group").state == State.WARNING
    assert run_of(ex, "broken").state == State.FAILED
    assert runs_of(ex, "skipped") == []
    assert run_of(ex, "next").outputs == {"value": "went on"}


def test_exit_killed_in_a_parallel_branch_stops_the_other_branch(client: Any) -> None:
    started = time.monotonic()
    ex = client.run(flow("""
        id: exit_parallel
        namespace: unit.features
        tasks:
          - id: par
            type: io.kestra.plugin.core.flow.Parallel
            tasks:
              - id: slow
                type: io.kestra.plugin.core.flow.Sleep
                duration: PT20S
              - id: stop
                type: io.kestra.plugin.core.execution.Exit
                state: KILLED
          - id: never
            type: io.kestra.plugin.core.log.Log
            message: never
    """), timeout=WAIT)
    assert ex.state == State.KILLED
    assert run_of(ex, "slow").state == State.KILLED
    assert runs_of(ex, "never") == []
    assert time.monotonic() - started < 10
