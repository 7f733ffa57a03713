"""log.Fetch: an execution's stored logs into a file, filtered by level and task, within the task's namespace."""

from __future__ import annotations

import json
import textwrap
from typing import Any

from app import runtime
from app.model.states import State

NS = "logs.fetch"


def flow(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


LOGGING = flow(f"""
    id: logging
    namespace: {NS}
    tasks:
      - id: chatty
        type: io.kestra.plugin.core.log.Log
        level: DEBUG
        message: details
      - id: warns
        type: io.kestra.plugin.core.log.Log
        level: WARN
        message: careful
      - id: fails_softly
        type: io.kestra.plugin.core.log.Log
        level: ERROR
        message: broken
      - id: all
        type: io.kestra.plugin.core.log.Fetch
        level: DEBUG
      - id: warnings
        type: io.kestra.core.tasks.log.Fetch
        level: WARN
      - id: of_one_task
        type: io.kestra.plugin.core.log.Fetch
        level: TRACE
        tasksId: [warns]
""")


def lines(uri: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in runtime.storage().get(uri).decode().splitlines()]


def outputs(ex: Any, task_id: str) -> dict[str, Any]:
    return next(r.outputs for r in ex.task_runs if r.task_id == task_id)


def test_fetch_filters_the_current_executions_logs_by_level_and_task(client: Any) -> None:
    ex = client.run(LOGGING, timeout=60)
    assert ex.state == State.SUCCESS, ex.to_json()
    every = lines(outputs(ex, "all")["uri"])
    assert [(row["taskId"], row["level"], row["message"]) for row in every] == [
        ("chatty", "DEBUG", "details"), ("warns", "WARN", "careful"), ("fails_softly", "ERROR", "broken")]
    assert outputs(ex, "all")["size"] == 3
    assert every[0]["executionId"] == ex.id and every[0]["namespace"] == NS and every[0]["flowId"] == "logging"
    assert [row["message"] for row in lines(outputs(ex, "warnings")["uri"])] == ["careful", "broken"]
    assert [row["taskId"] for row in lines(outputs(ex, "of_one_task")["uri"])] == ["warns"]


def test_fetch_reads_another_execution_of_its_namespace_only(client: Any) -> None:
    first = client.run(LOGGING, timeout=60)
    reader = flow(f"""
        id: reader
        namespace: {NS}
        inputs:
          - id: target
            type: STRING
          - id: ns
            type: STRING
            defaults: {NS}
        tasks:
          - id: fetch
            type: io.kestra.plugin.core.log.Fetch
            namespace: "{{{{ inputs.ns }}}}"
            flowId: logging
            executionId: "{{{{ inputs.target }}}}"
            level: ERROR
    """)
    ex = client.run(reader, {"target": first.id}, timeout=60)
    assert ex.state == State.SUCCESS, ex.to_json()
    assert [row["message"] for row in lines(outputs(ex, "fetch")["uri"])] == ["broken"]
    elsewhere = client.run(reader, {"target": first.id, "ns": "other.team"}, timeout=60)
    assert elsewhere.state == State.FAILED
    assert "reads only the logs of its own namespace" in elsewhere.task_runs[0].error
    unknown = client.run(reader, {"target": "nope"}, timeout=60)
    assert unknown.state == State.FAILED and "No execution 'nope'" in unknown.task_runs[0].error
