"""Kestra's newer and older names: read as what they mean, or refused as not supported yet (never as unknown)."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from app.errors import FlowValidationError
from app.model.loader import load_flow
from app.model.states import State


def flow(tasks: str, extra: str = "") -> str:
    return f"id: names\nnamespace: kestra.names\n{extra}tasks:\n" + textwrap.indent(textwrap.dedent(tasks), "  ")


@pytest.mark.parametrize("kind", ["io.kestra.plugin.core.flow.Approval", "io.kestra.plugin.core.flow.Loop",
                                  "io.kestra.core.tasks.scripts.Bash", "io.kestra.core.tasks.flows.Flow"])
def test_kestra_task_types_not_run_yet_are_refused_as_such(kind: str) -> None:
    with pytest.raises(FlowValidationError, match=f"task type '{kind}' is not supported yet"):
        load_flow(flow(f"- id: t\n  type: {kind}\n"))


@pytest.mark.parametrize(("text", "name"), [
    (flow("- id: each\n  type: io.kestra.plugin.core.flow.ForEach\n  values: [1]\n  childFailurePolicy: CONTINUE\n"
          "  tasks:\n    - id: r\n      type: io.kestra.plugin.core.debug.Return\n      format: x\n"),
     "childFailurePolicy"),
    (flow("- id: r\n  type: io.kestra.plugin.core.debug.Return\n  format: x\n  when: '{{ true }}'\n"), "when"),
    (flow("- id: p\n  type: io.kestra.plugin.core.flow.Pause\n  tasks: []\n"), "tasks"),
    (flow("- id: r\n  type: io.kestra.plugin.core.debug.Return\n  format: x\n",
          "concurrency:\n  limit: 1\n  queueLimit: 3\n"), "queueLimit"),
])
def test_kestra_properties_not_run_yet_are_refused_as_such(text: str, name: str) -> None:
    with pytest.raises(FlowValidationError, match=f"property '{name}' is not supported yet"):
        load_flow(text)


def test_a_misspelled_property_is_still_unknown_with_a_suggestion() -> None:
    with pytest.raises(FlowValidationError, match="unknown property; did you mean 'format'"):
        load_flow(flow("- id: r\n  type: io.kestra.plugin.core.debug.Return\n  formatt: x\n"))
    with pytest.raises(FlowValidationError, match="tasks.*unknown property"):  # `tasks` only refused on a Pause
        load_flow(flow("- id: r\n  type: io.kestra.plugin.core.debug.Return\n  format: x\n  tasks: []\n"))


def test_newer_retry_behavior_names_and_the_canceled_spelling(client: Any) -> None:
    parsed = load_flow(flow("- id: r\n  type: io.kestra.plugin.core.debug.Return\n  format: x\n  retry:\n"
                            "    type: constant\n    interval: PT1S\n    maxAttempt: 2\n    behavior: NEW_EXECUTION\n",
                            "retry:\n  type: constant\n  interval: PT1S\n  maxAttempt: 2\n  behavior: RETRY_FAILED\n"))
    assert parsed.task("r").retry is not None and parsed.task("r").retry.behavior == "CREATE_NEW_EXECUTION"
    assert parsed.retry is not None and parsed.retry.behavior == "RETRY_FAILED_TASK"
    ex = client.run(flow("- id: exit\n  type: io.kestra.plugin.core.execution.Exit\n  state: CANCELED\n"), timeout=60)
    assert ex.state == State.CANCELLED


def test_a_multiple_condition_is_refused_as_not_supported_yet() -> None:
    text = flow("- id: r\n  type: io.kestra.plugin.core.debug.Return\n  format: x\n",
                "triggers:\n  - id: listen\n    type: io.kestra.plugin.core.trigger.Flow\n    conditions:\n"
                "      - id: multiple\n        type: io.kestra.core.models.conditions.types.MultipleCondition\n"
                "        window: P1D\n        conditions: {}\n")
    with pytest.raises(FlowValidationError, match="'.*MultipleCondition' is not supported yet on a Flow"):
        load_flow(text)


def test_a_templated_pause_duration_is_rendered_when_the_pause_starts(client: Any) -> None:
    text = flow("- id: pause\n  type: io.kestra.plugin.core.flow.Pause\n  pauseDuration: \"{{ inputs.delay }}\"\n"
                "- id: after\n  type: io.kestra.plugin.core.debug.Return\n  format: done\n",
                "inputs:\n  - id: delay\n    type: STRING\n")
    ex = client.run(text, {"delay": "PT0.2S"}, timeout=60)
    assert ex.state == State.SUCCESS, ex.to_json()
    pause = next(r for r in ex.task_runs if r.task_id == "pause")
    assert pause.ended is not None and pause.started is not None
    assert (pause.ended - pause.started).total_seconds() >= 0.2
    bad = client.run(text, {"delay": "soon"}, timeout=60)
    assert bad.state == State.FAILED and "pauseDuration: expected an ISO-8601 duration" in bad.task_runs[0].error
    with pytest.raises(FlowValidationError, match="'5 minutes' is not a duration: use an ISO-8601 duration"):
        load_flow(flow("- id: pause\n  type: io.kestra.plugin.core.flow.Pause\n  pauseDuration: 5 minutes\n"))
