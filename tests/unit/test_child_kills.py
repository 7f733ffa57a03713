"""A kill reaches child executions, as in Kestra: killing a parent kills its running Subflow and ForEachItem
children, and so does a flowable timeout above the Subflow; the parent ends KILLED (or FAILED, timed out) without
waiting for them to finish on their own."""

from __future__ import annotations

import textwrap
import time
from typing import Any

from app import runtime
from app.model.states import State

CHILD = textwrap.dedent("""
    id: sleepy_child
    namespace: kills
    inputs:
      - {id: items, type: STRING, required: false}
    tasks:
      - id: long
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT60S
    """)


def children_of(ex_id: str) -> list[Any]:
    return [e for e in runtime.store().list_executions(namespace="kills", flow_id="sleepy_child", limit=200)
            if e.parent_execution_id == ex_id]


def wait_for(what: str, check: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def running_children(client: Any, ex_id: str, count: int) -> list[Any]:
    return wait_for(f"{count} running children", lambda: (lambda found: found if len(found) == count else None)(
        [e for e in children_of(ex_id) if any(r.state == State.RUNNING for r in client.get(e.id).task_runs)]))


def test_killing_a_parent_kills_its_running_subflow(client: Any) -> None:
    client.deploy(CHILD)
    ex = client.run(textwrap.dedent("""
        id: kills_subflow
        namespace: kills
        tasks:
          - {id: call, type: io.kestra.plugin.core.flow.Subflow, namespace: kills, flowId: sleepy_child}
        """), wait=False)
    [child] = running_children(client, ex.id, 1)
    started = time.monotonic()
    client.cancel(ex.id)
    parent = client.wait(ex.id, timeout=30)
    assert time.monotonic() - started < 15, "the parent waited for its child to end on its own"
    assert parent.state == State.KILLED and parent.task_runs[0].state == State.KILLED
    assert client.wait(child.id, timeout=30).state == State.KILLED


def test_killing_a_parent_kills_every_running_for_each_item_batch(client: Any) -> None:
    client.deploy(CHILD)
    uri_flow = textwrap.dedent("""
        id: kills_batches
        namespace: kills
        inputs:
          - {id: file, type: FILE}
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEachItem
            items: "{{ inputs.file }}"
            namespace: kills
            flowId: sleepy_child
            inputs: {items: "{{ taskrun.items }}"}
        """)
    path = runtime.settings().home / "three-lines.txt"
    path.write_text("a\nb\nc\n")
    ex = client.run(uri_flow, {"file": str(path)}, wait=False)
    children = running_children(client, ex.id, 3)
    client.cancel(ex.id)
    assert client.wait(ex.id, timeout=30).state == State.KILLED
    assert {client.wait(child.id, timeout=30).state for child in children} == {State.KILLED}


def test_a_timed_out_flowable_kills_the_subflow_running_under_it(client: Any) -> None:
    client.deploy(CHILD)
    ex = client.run(textwrap.dedent("""
        id: kills_by_timeout
        namespace: kills
        tasks:
          - id: group
            type: io.kestra.plugin.core.flow.Sequential
            timeout: PT1S
            tasks:
              - {id: call, type: io.kestra.plugin.core.flow.Subflow, namespace: kills, flowId: sleepy_child}
        """), wait=True, timeout=30)
    assert ex.state == State.FAILED, ex.to_json()
    assert {r.task_id: r.state for r in ex.task_runs} == {"group": State.FAILED, "call": State.KILLED}
    [child] = children_of(ex.id)
    assert client.wait(child.id, timeout=30).state == State.KILLED
