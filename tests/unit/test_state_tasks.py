"""Kestra's legacy state tasks: a flow's small JSON state kept between executions, per name, per loop value, and
shared by the namespace when asked."""

from __future__ import annotations

from typing import Any

from app import runtime
from app.model.states import State

NS = "legacy.state"

FLOW = f"""\
id: stateful
namespace: {NS}
tasks:
  - id: before
    type: io.kestra.plugin.core.state.Get
    name: seen
  - id: set
    type: io.kestra.core.tasks.states.Set
    name: seen
    data:
      runs: "{{{{ (outputs.before.data.runs ?? 0) | number + 1 }}}}"
      nested:
        last: "{{{{ execution.id }}}}"
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a", "b"]
    tasks:
      - id: per_value
        type: io.kestra.plugin.core.state.Set
        data:
          value: "{{{{ taskrun.value }}}}"
      - id: shared
        type: io.kestra.plugin.core.state.Set
        namespace: true
        taskrunValue: false
        data:
          "{{{{ taskrun.value }}}}": seen
  - id: after
    type: io.kestra.plugin.core.state.Get
    name: seen
"""


def outputs(ex: Any, task_id: str, value: str | None = None) -> dict[str, Any]:
    return next(r.outputs for r in ex.task_runs if r.task_id == task_id and r.value == value)


def test_state_is_kept_between_executions_merged_per_name_and_loop_value(client: Any) -> None:
    first = client.run(FLOW, timeout=60)
    assert first.state == State.SUCCESS, first.to_json()
    assert outputs(first, "before") == {"count": 0, "data": {}}
    assert outputs(first, "set") == {"count": 2, "key": "tasks-states/stateful/seen"}
    second = client.run(FLOW, timeout=60)
    assert outputs(second, "before")["data"] == {"runs": "1", "nested": {"last": first.id}}
    assert outputs(second, "after")["data"] == {"runs": "2", "nested": {"last": second.id}}
    assert outputs(second, "per_value", "a")["key"] == "tasks-states/stateful/default/a"
    assert runtime.store().kv_get(NS, "tasks-states/stateful/default/b") == {"value": "b"}
    assert runtime.store().kv_get(NS, "tasks-states/_namespace/default") == {"a": "seen", "b": "seen"}


def test_get_and_delete_of_a_missing_state_fail_only_when_asked(client: Any) -> None:
    ex = client.run(f"""\
id: cleanup
namespace: {NS}
tasks:
  - id: set
    type: io.kestra.plugin.core.state.Set
    name: temp
    data: {{k: v}}
  - id: delete
    type: io.kestra.plugin.core.state.Delete
    name: temp
  - id: again
    type: io.kestra.plugin.core.state.Delete
    name: temp
  - id: strict
    type: io.kestra.plugin.core.state.Get
    name: temp
    errorOnMissing: true
""", timeout=60)
    assert ex.state == State.FAILED
    assert outputs(ex, "delete") == {"deleted": True} and outputs(ex, "again") == {"deleted": False}
    strict = next(r for r in ex.task_runs if r.task_id == "strict")
    assert "No state 'temp'" in strict.error
    loud = client.run(f"""\
id: loud
namespace: {NS}
tasks:
  - id: delete
    type: io.kestra.plugin.core.state.Delete
    name: never
    errorOnMissing: true
""", timeout=60)
    assert loud.state == State.FAILED and "No state 'never' to delete" in loud.task_runs[0].error
