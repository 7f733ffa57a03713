"""Core runnable tasks added for Kestra parity: execution.Assert, kv.Set's kvType and kv.GetKeys, each run end to
end embedded and checked against Kestra's documented behaviour."""

from __future__ import annotations

import textwrap
from typing import Any

from app.model.states import State


def flow(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


def run(client: Any, text: str) -> Any:
    return client.run(flow(text), wait=True, timeout=30)


def outputs(ex: Any, task_id: str) -> dict[str, Any]:
    return next(r for r in ex.task_runs if r.task_id == task_id).outputs


def messages(client: Any, ex: Any) -> list[str]:
    return [row["message"] for row in client.logs(ex.id)]


# -- execution.Assert ----------------------------------------------------------------------------------------------
def test_assert_passes_when_every_condition_is_truthy(client: Any) -> None:
    ex = run(client, """
        id: assert_ok
        namespace: core.tasks
        inputs:
          - id: param
            type: STRING
            defaults: ok
        tasks:
          - id: check
            type: io.kestra.plugin.core.execution.Assert
            conditions:
              - "{{ inputs.param == 'ok' }}"
              - "{{ 1 + 1 == 2 }}"
              - "non-empty text is true"
          - id: after
            type: io.kestra.plugin.core.debug.Return
            format: reached
        """)
    assert ex.state == State.SUCCESS, ex.to_json()
    assert outputs(ex, "after") == {"value": "reached"}


def test_assert_fails_counting_the_false_conditions_and_adds_the_error_message(client: Any) -> None:
    ex = run(client, """
        id: assert_fails
        namespace: core.tasks
        tasks:
          - id: check
            type: io.kestra.plugin.core.execution.Assert
            errorMessage: "checked {{ flow.id }}"
            conditions:
              - "{{ 1 + 1 == 3 }}"
              - "{{ 1 == 1 }}"
              - "0"
              - "{{ nothing.here }}"
          - id: never
            type: io.kestra.plugin.core.debug.Return
            format: unreachable
        """)
    assert ex.state == State.FAILED
    [check] = [r for r in ex.task_runs if r.task_id == "check"]
    assert check.state == State.FAILED
    assert check.error == "3 assertions failed!\nchecked assert_fails"
    assert "never" not in {r.task_id for r in ex.task_runs}
    logged = messages(client, ex)
    assert "Assertion `{{ 1 + 1 == 3 }}` failed!" in logged
    assert "Assertion `0` failed!" in logged
    assert any(m.startswith("Assertion `{{ nothing.here }}` failed, failed to render") for m in logged)


def test_one_failed_assertion_is_singular(client: Any) -> None:
    ex = run(client, """
        id: assert_one
        namespace: core.tasks
        tasks:
          - id: check
            type: io.kestra.plugin.core.execution.Assert
            conditions: ["{{ false }}"]
        """)
    assert ex.task_runs[0].error == "1 assertion failed!"


# -- kv.Set kvType -------------------------------------------------------------------------------------------------
def test_kv_type_stores_the_rendered_string_as_the_named_type(client: Any) -> None:
    ex = run(client, """
        id: kv_types
        namespace: core.tasks
        tasks:
          - {id: n, type: io.kestra.plugin.core.kv.Set, key: number, value: "{{ 40 + 2 }}", kvType: NUMBER}
          - {id: f, type: io.kestra.plugin.core.kv.Set, key: ratio, value: "0.25", kvType: NUMBER}
          - {id: b, type: io.kestra.plugin.core.kv.Set, key: flag, value: "TRUE", kvType: BOOLEAN}
          - {id: nb, type: io.kestra.plugin.core.kv.Set, key: other_flag, value: "yes", kvType: BOOLEAN}
          - {id: j, type: io.kestra.plugin.core.kv.Set, key: doc, value: '{"a": [1, 2]}', kvType: JSON}
          - {id: t, type: io.kestra.plugin.core.kv.Set, key: when, value: "2024-01-02T03:04:05+02:00",
             kvType: DATETIME}
          - {id: d, type: io.kestra.plugin.core.kv.Set, key: span, value: "P1D", kvType: DURATION}
          - {id: s, type: io.kestra.plugin.core.kv.Set, key: text, value: "42", kvType: STRING}
          - {id: u, type: io.kestra.plugin.core.kv.Set, key: untyped, value: "42"}
          - id: read
            type: io.kestra.plugin.core.output.OutputValues
            values:
              sum: "{{ kv('number') + 1 }}"
              doc_a: "{{ kv('doc').a[1] }}"
        """)
    assert ex.state == State.SUCCESS, ex.to_json()
    store = client_store(client)
    assert store.kv_get("core.tasks", "number") == 42
    assert store.kv_get("core.tasks", "ratio") == 0.25
    assert store.kv_get("core.tasks", "flag") is True
    assert store.kv_get("core.tasks", "other_flag") is False  # Java's Boolean.parseBoolean: only "true"
    assert store.kv_get("core.tasks", "doc") == {"a": [1, 2]}
    assert store.kv_get("core.tasks", "when") == "2024-01-02T01:04:05Z"
    assert store.kv_get("core.tasks", "span") == "PT24H"
    assert store.kv_get("core.tasks", "text") == "42"
    assert store.kv_get("core.tasks", "untyped") == "42"
    assert outputs(ex, "read")["values"] == {"sum": "43", "doc_a": "2"}


def test_a_value_that_is_not_of_its_kv_type_fails_the_task_saying_so(client: Any) -> None:
    ex = run(client, """
        id: kv_bad_type
        namespace: core.tasks
        tasks:
          - {id: n, type: io.kestra.plugin.core.kv.Set, key: not_a_number, value: "forty-two", kvType: NUMBER}
        """)
    assert ex.state == State.FAILED
    assert ex.task_runs[0].error.startswith("kvType NUMBER: 'forty-two' cannot be read as one")
    assert client_store(client).kv_get("core.tasks", "not_a_number") is None


def test_an_unknown_kv_type_is_refused_at_validation(client: Any) -> None:
    import pytest

    from app.errors import FlowValidationError

    with pytest.raises(FlowValidationError, match="kvType"):
        client.validate(flow("""
            id: kv_unknown_type
            namespace: core.tasks
            tasks:
              - {id: n, type: io.kestra.plugin.core.kv.Set, key: k, value: "1", kvType: INTEGER}
            """))


# -- kv.GetKeys ----------------------------------------------------------------------------------------------------
def test_get_keys_lists_live_keys_by_prefix_and_namespace(client: Any) -> None:
    store = client_store(client)
    from datetime import timedelta

    store.kv_put("core.tasks.keys", "gone", "x", ttl=timedelta(milliseconds=1))
    store.kv_put("core.tasks.elsewhere", "theirs", "x")
    ex = run(client, """
        id: kv_keys
        namespace: core.tasks.keys
        tasks:
          - {id: a, type: io.kestra.plugin.core.kv.Set, key: orders_2024, value: "1"}
          - {id: b, type: io.kestra.plugin.core.kv.Set, key: orders_2025, value: "2"}
          - {id: c, type: io.kestra.plugin.core.kv.Set, key: "order%", value: "3"}
          - {id: d, type: io.kestra.plugin.core.kv.Set, key: customers, value: "4"}
          - {id: all, type: io.kestra.plugin.core.kv.GetKeys}
          - {id: orders, type: io.kestra.plugin.core.kv.GetKeys, prefix: "{{ 'orders_' }}"}
          - {id: literal, type: io.kestra.plugin.core.kv.GetKeys, prefix: "order%"}
          - {id: other, type: io.kestra.plugin.core.kv.GetKeys, namespace: core.tasks.elsewhere}
        """)
    assert ex.state == State.SUCCESS, ex.to_json()
    assert outputs(ex, "all") == {"keys": ["customers", "order%", "orders_2024", "orders_2025"]}
    assert outputs(ex, "orders") == {"keys": ["orders_2024", "orders_2025"]}
    assert outputs(ex, "literal") == {"keys": ["order%"]}  # a prefix, not a LIKE pattern
    assert outputs(ex, "other") == {"keys": ["theirs"]}


def client_store(client: Any) -> Any:
    from app import runtime

    return runtime.store()


# -- flow concurrency ----------------------------------------------------------------------------------------------
def _concurrent(behavior: str, limit: int = 1) -> str:
    return flow(f"""
        id: limited_{behavior.lower()}_{limit}
        namespace: core.tasks
        concurrency:
          limit: {limit}
          behavior: {behavior}
        tasks:
          - id: sleep
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT1.5S
        """)


def _wait_running(client: Any, execution_id: str) -> None:
    import time

    deadline = time.monotonic() + 20
    while client.state(execution_id) != State.RUNNING:
        assert time.monotonic() < deadline, client.state(execution_id)
        time.sleep(0.02)


def test_past_the_concurrency_limit_behavior_fail_fails_the_new_execution_at_once(client: Any) -> None:
    first = client.run(_concurrent("FAIL"), wait=False)
    _wait_running(client, first.id)
    second = client.run(_concurrent("FAIL"), wait=True, timeout=10)
    assert second.state == State.FAILED and second.task_runs == []
    assert second.error == ("the flow's concurrency limit (1) is reached: 1 execution running; behavior FAIL ends "
                            "this one FAILED")
    assert second.error in messages(client, second)
    assert client.wait(first.id, timeout=20).state == State.SUCCESS
    third = client.run(_concurrent("FAIL"), wait=True, timeout=20)  # the slot is free again
    assert third.state == State.SUCCESS


def test_behavior_cancel_cancels_the_new_execution_and_a_limit_of_two_admits_two(client: Any) -> None:
    first = client.run(_concurrent("CANCEL"), wait=False)
    _wait_running(client, first.id)
    assert client.run(_concurrent("CANCEL"), wait=True, timeout=10).state == State.CANCELLED
    pair = [client.run(_concurrent("CANCEL", 2), wait=False) for _ in range(2)]
    for ex in pair:
        _wait_running(client, ex.id)
    assert client.run(_concurrent("CANCEL", 2), wait=True, timeout=10).state == State.CANCELLED
    assert [client.wait(ex.id, timeout=20).state for ex in [first, *pair]] == [State.SUCCESS] * 3


# -- Kestra core types not run yet ---------------------------------------------------------------------------------
def test_kestra_core_types_not_run_yet_are_named_as_such_even_nested(client: Any) -> None:
    import pytest

    from app.errors import FlowValidationError
    from app.model.registry import TYPE_NAMES
    from app.model.suggestions import NOT_YET

    assert not NOT_YET & set(TYPE_NAMES)  # a type that is implemented is no longer listed
    for kind in ("io.kestra.plugin.core.flow.Template", "io.kestra.plugin.core.http.SseRequest"):
        with pytest.raises(FlowValidationError, match=f"task type '{kind}' is not supported yet"):
            client.validate(flow(f"""
                id: not_yet
                namespace: core.tasks
                tasks:
                  - id: outer
                    type: io.kestra.plugin.core.flow.Sequential
                    tasks:
                      - id: inner
                        type: {kind}
                """))


# -- restart -------------------------------------------------------------------------------------------------------
RESTARTABLE = """
    id: restartable
    namespace: core.restart
    tasks:
      - id: before
        type: io.kestra.plugin.core.debug.Return
        format: "{{ execution.id }}"
      - id: group
        type: io.kestra.plugin.core.flow.Sequential
        tasks:
          - id: gate
            type: io.kestra.plugin.core.execution.Fail
            condition: "{{ kv('restart_go') == null }}"
          - id: inside_after
            type: io.kestra.plugin.core.debug.Return
            format: after
        errors:
          - id: local_handler
            type: io.kestra.plugin.core.log.Log
            message: local
      - id: last
        type: io.kestra.plugin.core.debug.Return
        format: last
    errors:
      - id: global_handler
        type: io.kestra.plugin.core.log.Log
        message: handled
    """


def test_restart_runs_the_failed_task_again_as_a_new_attempt_of_the_same_execution(client: Any) -> None:
    store = client_store(client)
    store.kv_delete("core.restart", "restart_go")
    first = run(client, RESTARTABLE)
    assert first.state == State.FAILED
    assert {r.task_id: r.state for r in first.task_runs} == {
        "before": State.SUCCESS, "group": State.FAILED, "gate": State.FAILED, "local_handler": State.SUCCESS,
        "global_handler": State.SUCCESS}
    store.kv_put("core.restart", "restart_go", True)  # what made it fail is fixed
    again = client.restart(first.id, wait=True, timeout=30)
    assert again.id == first.id and again.state == State.SUCCESS, again.to_json()
    runs = {r.task_id: r for r in again.task_runs}
    assert set(runs) == {"before", "group", "gate", "inside_after", "last"}  # the error handlers' runs are gone
    assert [a.state for a in runs["gate"].attempts] == [State.FAILED, State.SUCCESS]
    assert [a.state for a in runs["before"].attempts] == [State.SUCCESS]  # what succeeded is not run again
    assert again.to_json()["metadata"] == {"attemptNumber": 2}


def test_restart_refuses_what_it_cannot_restart(client: Any) -> None:
    import pytest

    from app.errors import CelestraError

    ok = run(client, """
        id: nothing_failed
        namespace: core.restart
        tasks: [{id: t, type: io.kestra.plugin.core.debug.Return, format: x}]
        """)
    with pytest.raises(CelestraError, match="no failed task found"):
        client.restart(ok.id)
    sleeping = client.run(flow("""
        id: still_running
        namespace: core.restart
        tasks: [{id: s, type: io.kestra.plugin.core.flow.Sleep, duration: PT1S}]
        """), wait=False)
    with pytest.raises(CelestraError, match="must be terminated to be restarted, current state is"):
        client.restart(sleeping.id)
    assert client.wait(sleeping.id, timeout=20).state == State.SUCCESS


# -- a disabled flow -----------------------------------------------------------------------------------------------
def test_a_disabled_flow_is_not_executed_by_hand_or_by_a_subflow(client: Any) -> None:
    import pytest

    from app.errors import CelestraError

    disabled = flow("""
        id: switched_off
        namespace: core.disabled
        disabled: true
        tasks: [{id: t, type: io.kestra.plugin.core.debug.Return, format: x}]
        """)
    with pytest.raises(CelestraError, match="Flow core.disabled.switched_off is disabled: it cannot be executed"):
        client.run(disabled)
    client.deploy(disabled)
    parent = run(client, """
        id: calls_it
        namespace: core.disabled
        tasks:
          - id: child
            type: io.kestra.plugin.core.flow.Subflow
            namespace: core.disabled
            flowId: switched_off
        """)
    assert parent.state == State.FAILED
    assert "is disabled: it cannot be executed" in (parent.task_runs[0].error or "")
    assert client.executions("core.disabled", "switched_off") == []


def test_behavior_queue_holds_new_executions_queued_and_starts_them_in_order_as_slots_free(client: Any) -> None:
    import time

    source = flow("""
        id: queued_flow
        namespace: core.tasks
        concurrency:
          limit: 1
        tasks:
          - id: sleep
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT1S
        """)
    first = client.run(source, wait=False)
    _wait_running(client, first.id)
    second, third = client.run(source, wait=False), client.run(source, wait=False)
    time.sleep(0.3)
    assert (client.state(second.id), client.state(third.id)) == (State.QUEUED, State.QUEUED)
    assert client.get(second.id).task_runs == []
    assert any("queued until one ends" in m for m in messages(client, second))
    ended = [client.wait(ex.id, timeout=30) for ex in (first, second, third)]
    assert [ex.state for ex in ended] == [State.SUCCESS] * 3
    assert ended[0].ended <= ended[1].started and ended[1].ended <= ended[2].started  # one at a time, in order


# -- a task sees its own namespace's files only ----------------------------------------------------------------
def test_tasks_read_files_of_their_own_namespace_only(client: Any) -> None:
    writer = run(client, """
        id: writer
        namespace: team.alpha
        tasks:
          - {id: secret_file, type: io.kestra.plugin.core.storage.Write, content: "alpha's data"}
          - {id: same_namespace, type: io.kestra.plugin.core.debug.Return,
             format: "{{ read(outputs.secret_file.uri) }}"}
        """)
    assert writer.state == State.SUCCESS, writer.to_json()
    assert outputs(writer, "same_namespace") == {"value": "alpha's data"}
    uri = outputs(writer, "secret_file")["uri"]
    for task in (f'{{id: t, type: io.kestra.plugin.core.debug.Return, format: "{{{{ read(\'{uri}\') }}}}"}}',
                 "{id: t, type: io.kestra.plugin.scripts.shell.Commands, commands: [cat staged.txt], "
                 f"inputFiles: {{staged.txt: '{uri}'}}}}",
                 f"{{id: t, type: io.kestra.plugin.core.storage.Size, uri: '{uri}'}}"):
        reader = run(client, f"""
            id: reader
            namespace: team.beta
            tasks:
              - {task}
            """)
        assert reader.state == State.FAILED, task
        assert "is not a file of the namespace 'team.beta'" in (reader.task_runs[0].error or ""), reader.to_json()
        assert "alpha's data" not in str([row["message"] for row in client.logs(reader.id)])
