"""What the task properties every flowable inherits do there (Kestra's semantics): `timeout` ends a flowable that
runs too long and stops what runs under it, `logLevel` filters the executor's lines about it, a Pause's
`allowFailure`/`allowWarning`; and what has no meaning on a flowable is refused, saying why."""

from __future__ import annotations

import textwrap
import time
from typing import Any

import pytest

from app import runtime
from app.errors import FlowValidationError
from app.model.loader import load_flow
from app.model.states import State

RETURN = "io.kestra.plugin.core.debug.Return"
SLEEP = "io.kestra.plugin.core.flow.Sleep"


def flow(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


def states(ex: Any) -> dict[str, State]:
    return {run.task_id: run.state for run in ex.task_runs}


def run_of(ex: Any, task_id: str) -> Any:
    return next(run for run in ex.task_runs if run.task_id == task_id)


def log_lines(ex: Any, min_level: str | None = None) -> list[dict[str, Any]]:
    return runtime.store().logs(ex.id, min_level=min_level)


@pytest.mark.parametrize("flowable", ["Sequential", "Parallel"])
def test_a_flowable_that_outlives_its_timeout_fails_and_stops_what_runs_under_it(client: Any, flowable: str) -> None:
    started = time.monotonic()
    ex = client.run(flow(f"""
        id: flowable_timeout_{flowable.lower()}
        namespace: props
        tasks:
          - id: group
            type: io.kestra.plugin.core.flow.{flowable}
            timeout: PT1S
            tasks:
              - id: long
                type: {SLEEP}
                duration: PT60S
              - id: next
                type: {RETURN}
                format: next
          - id: after
            type: {RETURN}
            format: never
        errors:
          - id: handled
            type: {RETURN}
            format: handled
        """), wait=True, timeout=45)
    assert time.monotonic() - started < 30, "the sleep was not stopped"
    assert ex.state == State.FAILED, ex.to_json()
    group = run_of(ex, "group")
    assert group.state == State.FAILED and group.error == "Task 'group' timed out after PT1S"
    assert run_of(ex, "long").state == State.KILLED
    assert states(ex)["handled"] == State.SUCCESS and "after" not in states(ex)
    if flowable == "Sequential":
        assert "next" not in states(ex)
    assert any(row["level"] == "ERROR" and "timed out" in row["message"] for row in log_lines(ex))


def test_a_timed_out_flowable_that_allows_failure_ends_in_warning_and_the_flow_goes_on(client: Any) -> None:
    ex = client.run(flow(f"""
        id: flowable_timeout_allowed
        namespace: props
        tasks:
          - id: group
            type: io.kestra.plugin.core.flow.Sequential
            timeout: PT0.5S
            allowFailure: true
            tasks:
              - {{id: long, type: {SLEEP}, duration: PT60S}}
          - {{id: after, type: {RETURN}, format: went on}}
        """), wait=True, timeout=45)
    assert ex.state == State.WARNING, ex.to_json()
    assert states(ex) == {"group": State.WARNING, "long": State.KILLED, "after": State.SUCCESS}


def test_a_flowable_that_ends_in_time_is_not_touched_by_its_timeout(client: Any) -> None:
    ex = client.run(flow(f"""
        id: flowable_in_time
        namespace: props
        tasks:
          - id: group
            type: io.kestra.plugin.core.flow.Sequential
            timeout: PT30S
            tasks:
              - {{id: quick, type: {RETURN}, format: quick}}
        """), wait=True, timeout=45)
    assert ex.state == State.SUCCESS, ex.to_json()
    assert run_of(ex, "group").next_at is None  # its deadline timer is gone with it


def test_a_working_directory_timeout_stops_the_running_child_and_starts_no_other(client: Any) -> None:
    started = time.monotonic()
    ex = client.run(flow(f"""
        id: wd_timeout
        namespace: props
        tasks:
          - id: wd
            type: io.kestra.plugin.core.flow.WorkingDirectory
            timeout: PT1S
            tasks:
              - {{id: long, type: {SLEEP}, duration: PT60S}}
              - {{id: never, type: {RETURN}, format: never}}
        """), wait=True, timeout=45)
    assert time.monotonic() - started < 30, "the child kept running past the WorkingDirectory's timeout"
    assert ex.state == State.FAILED, ex.to_json()
    assert run_of(ex, "wd").error == "Task 'wd' timed out after PT1S"
    assert states(ex) == {"wd": State.FAILED, "long": State.KILLED}


@pytest.mark.parametrize(("log_level", "kept"), [(None, True), ("WARN", True), ("ERROR", False)])
def test_a_flowable_log_level_filters_the_executor_lines_about_it(client: Any, log_level: str | None,
                                                                   kept: bool) -> None:
    level = f"logLevel: {log_level}" if log_level else ""
    ex = client.run(flow(f"""
        id: flowable_log_level_{(log_level or 'none').lower()}
        namespace: props
        tasks:
          - id: group
            type: io.kestra.plugin.core.flow.Sequential
            timeout: PT0.3S
            allowFailure: true
            {level}
            tasks:
              - {{id: long, type: {SLEEP}, duration: PT60S}}
        """), wait=True, timeout=45)
    assert ex.state == State.WARNING, ex.to_json()
    warned = [row for row in log_lines(ex) if row["task_id"] == "group"]
    assert [row["level"] for row in warned] == (["WARN"] if kept else [])


def test_log_queries_keep_lines_from_a_minimum_level(client: Any) -> None:
    ex = client.run(flow("""
        id: log_minimum
        namespace: props
        tasks:
          - {id: debug, type: io.kestra.plugin.core.log.Log, level: DEBUG, message: low}
          - {id: warn, type: io.kestra.plugin.core.log.Log, level: WARN, message: mid}
          - {id: error, type: io.kestra.plugin.core.log.Log, level: ERROR, message: high}
        """), wait=True, timeout=45)
    assert ex.state == State.SUCCESS
    assert [row["message"] for row in log_lines(ex, "WARN")] == ["mid", "high"]
    assert [row["message"] for row in log_lines(ex)] == ["low", "mid", "high"]


# -- Pause: allowFailure and allowWarning on how it ends -------------------------------------------------------------
@pytest.mark.parametrize(("pause", "pause_state", "execution"), [
    ("pauseDuration: PT0.2S\n            behavior: FAIL\n            allowFailure: true", State.WARNING, State.WARNING),
    ("timeout: PT0.2S\n            allowFailure: true", State.WARNING, State.WARNING),
    ("timeout: PT0.2S\n            allowFailure: true\n            allowWarning: true", State.SUCCESS, State.SUCCESS),
    ("pauseDuration: PT0.2S\n            behavior: WARN\n            allowWarning: true", State.SUCCESS, State.SUCCESS),
    ("pauseDuration: PT0.2S\n            behavior: FAIL", State.FAILED, State.FAILED),
])
def test_a_pause_that_ends_badly_is_allowed_as_its_allow_properties_say(
        client: Any, pause: str, pause_state: State, execution: State) -> None:
    ex = client.run(flow(f"""
        id: pause_allowed
        namespace: props
        tasks:
          - id: pause
            type: io.kestra.plugin.core.flow.Pause
            {pause}
          - id: after
            type: {RETURN}
            format: went on
        """), wait=True, timeout=30)
    assert ex.state == execution, ex.to_json()
    assert states(ex)["pause"] == pause_state
    assert ("after" in states(ex)) == (execution != State.FAILED)


# -- refused, saying why ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("task", "message"), [
    ("{id: s, type: io.kestra.plugin.core.flow.Sequential, workerGroup: {key: gpu}, tasks: [{id: r, type: "
     f"{RETURN}}}]}}", "workerGroup on a Sequential is not supported yet: a Sequential runs in the executor"),
    ("{id: p, type: io.kestra.plugin.core.flow.Pause, workerGroup: {key: gpu}}", "workerGroup on a Pause"),
    ("{id: p, type: io.kestra.plugin.core.flow.Pause, retry: {type: constant, interval: PT1S, maxAttempt: 2}}",
     "retry on a Pause is not supported yet"),
    ("{id: p, type: io.kestra.plugin.core.flow.Pause, errors: [{id: r, type: " + RETURN + "}]}",
     "errors on a Pause is not supported yet"),
    ("{id: p, type: io.kestra.plugin.core.flow.Pause, finally: [{id: r, type: " + RETURN + "}]}",
     "finally on a Pause is not supported yet"),
    ("{id: s, type: io.kestra.plugin.core.flow.Subflow, namespace: n, flowId: f, timeout: PT1M}",
     "timeout on a Subflow or ForEachItem is not supported yet"),
    ("{id: s, type: io.kestra.plugin.core.flow.Subflow, namespace: n, flowId: f, errors: [{id: r, type: "
     f"{RETURN}}}]}}", "errors on a Subflow is not supported yet"),
    ("{id: s, type: io.kestra.plugin.core.flow.Subflow, namespace: n, flowId: f, finally: [{id: r, type: "
     f"{RETURN}}}]}}", "finally on a Subflow is not supported yet"),
    ("{id: l, type: io.kestra.plugin.core.flow.LoopUntil, condition: 'true', timeout: PT1M, tasks: [{id: r, type: "
     f"{RETURN}}}]}}", "timeout on a LoopUntil is not supported yet: use checkFrequency.maxDuration"),
])
def test_what_has_no_meaning_on_a_flowable_is_refused(task: str, message: str) -> None:
    with pytest.raises(FlowValidationError) as raised:
        load_flow(f"id: refused\nnamespace: props\ntasks:\n  - {task}\n")
    assert message in str(raised.value)


def test_a_working_directory_keeps_its_worker_group() -> None:
    loaded = load_flow(flow(f"""
        id: wd_group
        namespace: props
        tasks:
          - id: wd
            type: io.kestra.plugin.core.flow.WorkingDirectory
            workerGroup: {{key: gpu}}
            tasks: [{{id: r, type: {RETURN}}}]
        """))
    assert loaded.task("wd").workerGroup is not None


# -- a flow's own `revision` --------------------------------------------------------------------------------------
def test_a_revision_written_in_the_flow_is_replaced_by_the_stored_one(client: Any) -> None:
    """Kestra manages revisions itself: the one in the source is ignored; each changed deploy adds one."""
    source = flow(f"""
        id: revision_written
        namespace: props
        revision: 41
        tasks:
          - {{id: r, type: {RETURN}, format: "{{{{ flow.revision }}}}"}}
        """)
    first = client.deploy(source)
    second = client.deploy(source.replace("revision: 41", "revision: 7"))
    assert (first["revision"], second["revision"]) == (1, 2)
    ex = client.execute("props", "revision_written", wait=True, timeout=30)
    assert ex.state == State.SUCCESS and ex.flow_revision == 2
    assert run_of(ex, "r").outputs == {"value": "2"}
