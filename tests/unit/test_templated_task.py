"""`templating.TemplatedTask`: the spec is rendered, read as a task and run as this task, its outputs this one's;
a spec that is not a runnable task, or that sets what belongs on the TemplatedTask, fails it saying why."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from app.model.states import State


def flow(spec: str, flow_id: str = "templated") -> str:
    head = textwrap.dedent(f"""\
        id: {flow_id}
        namespace: templated
        inputs:
          - {{id: kind, type: STRING, defaults: Return}}
          - {{id: word, type: STRING, defaults: hello}}
        tasks:
          - id: templated
            type: io.kestra.plugin.core.templating.TemplatedTask
            spec: |
        """)
    return head + textwrap.indent(textwrap.dedent(spec).strip(), " " * 6) + "\n"


def test_the_rendered_spec_runs_as_the_task_and_gives_its_outputs(client: Any) -> None:
    ex = client.run(flow("""
        type: io.kestra.plugin.core.debug.{{ inputs.kind }}
        format: "{{ inputs.word | upper }} from {{ flow.id }}"
        """), wait=True, timeout=30)
    assert ex.state == State.SUCCESS, ex.to_json()
    assert ex.task_runs[0].outputs == {"value": "HELLO from templated"}
    logged = client.run(flow("""
        type: io.kestra.plugin.core.log.Log
        message: "said {{ inputs.word }}"
        """, "templated_log"), wait=True, timeout=30)
    assert [row["message"] for row in client.logs(logged.id)] == ["said hello"]


@pytest.mark.parametrize(("spec", "message"), [
    ("type: io.kestra.plugin.core.flow.Sequential\ntasks: []", "must be a runnable task"),
    ("type: io.kestra.plugin.core.debug.Nope", "unknown task type 'io.kestra.plugin.core.debug.Nope'"),
    ("just text", "must be a task: a mapping with a `type`"),
    ("type: io.kestra.plugin.core.debug.Return\nformat: [unclosed", "The rendered spec is not YAML"),
    ("type: io.kestra.plugin.core.debug.Return\nformatt: x", "is not a valid io.kestra.plugin.core.debug.Return"),
    ("type: io.kestra.plugin.core.debug.Return\ntimeout: PT1S", "sets timeout: set them on the TemplatedTask"),
])
def test_a_spec_that_is_not_a_runnable_task_fails_saying_why(client: Any, spec: str, message: str) -> None:
    ex = client.run(flow(spec, "templated_bad"), wait=True, timeout=30)
    assert ex.state == State.FAILED
    assert message in (ex.task_runs[0].error or ""), ex.task_runs[0].error
