"""Retry behavior CREATE_NEW_EXECUTION: a failed execution ends RETRIED and its flow runs again as a new execution
with the same inputs and labels; maxAttempt and maxDuration count over the chain. (Kestra's own test flows for it,
retry-new-execution-flow-*.yml, run in tests/conformance.)"""

from __future__ import annotations

import textwrap
from typing import Any

from app import runtime
from app.model.states import State

NS = "core.retried"


def flow(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


def chain_of(last: Any) -> list[Any]:
    """Every try of the chain `last` ends, oldest first."""
    first = last.original_id or last.id
    tries = [e for e in runtime.store().list_executions(namespace=NS, limit=100)
             if e.id == first or e.original_id == first]
    return sorted(tries, key=lambda e: e.retry_attempt)


def test_the_flow_runs_again_as_a_new_execution_with_its_inputs_until_it_succeeds(client: Any) -> None:
    runtime.store().kv_delete(NS, "tries")
    source = flow(f"""
        id: gate
        namespace: {NS}
        labels:
          team: data
        inputs:
          - id: who
            type: STRING
          - id: token
            type: SECRET
        tasks:
          - id: count
            type: io.kestra.plugin.core.kv.Set
            key: tries
            value: "{{{{ ((kv('tries') ?? '0') | number) + 1 }}}}"
          - id: gate
            type: io.kestra.plugin.core.execution.Fail
            runIf: "{{{{ (kv('tries') | number) < 3 }}}}"
            retry:
              behavior: CREATE_NEW_EXECUTION
              type: constant
              interval: PT0.1S
              maxAttempt: 5
          - id: done
            type: io.kestra.plugin.core.debug.Return
            format: "{{{{ inputs.who }}}} {{{{ inputs.token | length }}}} {{{{ execution.originalId }}}}"
        """)
    last = client.run(source, {"who": "ada", "token": "s3cret"}, wait=True, timeout=60)  # wait follows the chain
    assert last.state == State.SUCCESS, [(r.task_id, r.state, r.error) for r in last.task_runs]
    tries = chain_of(last)
    assert [(e.state, e.retry_attempt) for e in tries] == [(State.RETRIED, 1), (State.RETRIED, 2), (State.SUCCESS, 3)]
    first = tries[0]
    assert last.original_id == first.id and last.to_json()["originalId"] == first.id
    assert {e.inputs["who"] for e in tries} == {"ada"} and all(e.labels["team"] == "data" for e in tries)
    assert last.task_runs[-1].outputs["value"] == f"ada 6 {first.id}"  # the SECRET input came along encrypted
    gate = next(r for r in first.task_runs if r.task_id == "gate")
    assert gate.state == State.RETRIED and [a.state for a in gate.attempts] == [State.RETRIED]


def test_max_attempt_counts_the_executions_of_the_chain(client: Any) -> None:
    source = flow(f"""
        id: always_fails
        namespace: {NS}
        retry:
          behavior: CREATE_NEW_EXECUTION
          type: constant
          interval: PT0.1S
          maxAttempt: 2
        tasks:
          - id: fail
            type: io.kestra.plugin.core.execution.Fail
        """)
    last = client.run(source, wait=True, timeout=60)
    assert [e.state for e in chain_of(last)] == [State.RETRIED, State.FAILED]


def test_a_running_branch_stops_when_its_execution_is_retried_and_a_flowable_may_retry_so(client: Any) -> None:
    source = flow(f"""
        id: flowable_retry
        namespace: {NS}
        tasks:
          - id: both
            type: io.kestra.plugin.core.flow.Parallel
            retry:
              behavior: CREATE_NEW_EXECUTION
              type: constant
              interval: PT0.2S
              maxAttempt: 2
            tasks:
              - id: fail
                type: io.kestra.plugin.core.execution.Fail
              - id: slow
                type: io.kestra.plugin.core.flow.Sleep
                duration: PT1S
        """)
    last = client.run(source, wait=True, timeout=60)
    first, second = chain_of(last)
    assert (first.state, second.state) == (State.RETRIED, State.FAILED)
    both = next(r for r in first.task_runs if r.task_id == "both")
    assert both.state == State.RETRIED and both.attempts[-1].state == State.RETRIED
