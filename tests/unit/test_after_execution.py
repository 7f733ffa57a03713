"""Kestra's flow `afterExecution`: tasks that run once the rest of the execution has ended, seeing the state it
ends in as `execution.state` (in the executor, for `runIf`, and on the worker), and never changing that state."""

from __future__ import annotations

import textwrap
from typing import Any

from app import runtime
from app.model.states import State

RETURN = "io.kestra.plugin.core.debug.Return"


def flow(fail: bool) -> str:
    return textwrap.dedent(f"""
        id: after_execution_{'fails' if fail else 'succeeds'}
        namespace: after
        tasks:
          - id: work
            type: {'io.kestra.plugin.core.execution.Fail' if fail else RETURN}
        errors:
          - id: handled
            type: {RETURN}
            format: handled
        afterExecution:
          - id: seen
            type: {RETURN}
            format: "{{{{ execution.state }}}}"
          - id: on_success
            type: {RETURN}
            runIf: "{{{{ execution.state == 'SUCCESS' }}}}"
            format: good news
          - id: on_failure
            type: io.kestra.plugin.core.log.Log
            runIf: "{{{{ execution.state == 'FAILED' }}}}"
            message: "bad news: {{{{ execution.state }}}}"
          - id: broken
            type: io.kestra.plugin.core.execution.Fail
          - id: not_after_a_failure
            type: {RETURN}
        """).strip() + "\n"


def states(ex: Any) -> dict[str, State]:
    return {run.task_id: run.state for run in ex.task_runs}


def test_after_a_failure_they_see_failed_and_the_execution_stays_failed(client: Any) -> None:
    ex = client.run(flow(fail=True), wait=True, timeout=30)
    assert ex.state == State.FAILED, ex.to_json()
    assert states(ex) == {"work": State.FAILED, "handled": State.SUCCESS, "seen": State.SUCCESS,
                          "on_success": State.SKIPPED, "on_failure": State.SUCCESS, "broken": State.FAILED}
    runs = {run.task_id: run for run in ex.task_runs}
    assert runs["seen"].outputs == {"value": "FAILED"}
    assert runs["seen"].created >= runs["handled"].ended  # after the rest, errors included
    messages = [row["message"] for row in runtime.store().logs(ex.id) if row["task_id"] == "on_failure"]
    assert messages == ["bad news: FAILED"]  # rendered on the worker: it sees the state too


def test_after_a_success_a_failing_after_execution_task_leaves_it_successful(client: Any) -> None:
    ex = client.run(flow(fail=False), wait=True, timeout=30)
    assert ex.state == State.SUCCESS, ex.to_json()
    assert states(ex) == {"work": State.SUCCESS, "seen": State.SUCCESS, "on_success": State.SUCCESS,
                          "on_failure": State.SKIPPED, "broken": State.FAILED}
    assert next(r for r in ex.task_runs if r.task_id == "seen").outputs == {"value": "SUCCESS"}
    assert ex.final_state == State.SUCCESS


def test_a_restart_runs_them_again_once_the_restarted_execution_has_ended(client: Any) -> None:
    ex = client.run(flow(fail=True), wait=True, timeout=30)
    seen_before = next(r for r in ex.task_runs if r.task_id == "seen")
    again = client.restart(ex.id, wait=True, timeout=30)
    assert again.state == State.FAILED, again.to_json()
    seen_after = next(r for r in again.task_runs if r.task_id == "seen")
    assert seen_after.id != seen_before.id and seen_after.outputs == {"value": "FAILED"}
    assert sum(1 for r in again.task_runs if r.task_id == "seen") == 1
