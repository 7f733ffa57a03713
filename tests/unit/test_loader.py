"""Loading flow YAML: every problem names file, line, column and field; aliases and defaults."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from app.errors import FlowValidationError
from app.model.flow import Flow
from app.model.flowables import Dag, Sequential
from app.model.loader import load_flow, load_flow_file
from workers.plugins.core import Log, Sleep

HELLO = Path(__file__).resolve().parents[2] / "flows" / "hello.yaml"


def load(text: str, filename: str = "flow.yaml") -> Flow:
    return load_flow(textwrap.dedent(text).lstrip(), filename)


def problems(text: str, filename: str = "flow.yaml") -> list[str]:
    with pytest.raises(FlowValidationError) as info:
        load(text, filename)
    assert info.value.problems, "a FlowValidationError must carry at least one problem"
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


def test_hello_loads() -> None:
    flow, source = load_flow_file(HELLO)
    assert (flow.namespace, flow.id) == ("company.team", "hello")
    assert [t.id for t in flow.tasks] == ["greet", "message", "done"]
    assert source == HELLO.read_text()


def test_unknown_property_names_its_line_and_column() -> None:
    found = problems("""
        id: typo
        namespace: unit.loader
        tasks:
          - id: greet
            type: io.kestra.plugin.core.log.Log
            message: hi
            mesage: typo
    """)
    assert found == ["flow.yaml:7:5: tasks[0].mesage (task 'greet'): unknown property; did you mean 'message'?"]


def test_unknown_property_at_flow_level() -> None:
    found = problems("""
        id: typo
        namespace: unit.loader
        taks: []
        tasks:
          - id: greet
            type: Log
            message: hi
    """)
    assert found == ["flow.yaml:3:1: taks: unknown property; did you mean 'tasks'?"]


def test_unknown_property_in_a_nested_task() -> None:
    found = problems("""
        id: nested_typo
        namespace: unit.loader
        tasks:
          - id: seq
            type: io.kestra.plugin.core.flow.Sequential
            tasks:
              - id: inner
                type: io.kestra.plugin.core.debug.Return
                format: x
                colour: red
    """)
    assert found == ["flow.yaml:10:9: tasks[0].tasks[0].colour (task 'inner'): unknown property"]


def test_missing_flow_id() -> None:
    found = problems("""
        namespace: unit.loader
        tasks:
          - id: greet
            type: Log
            message: hi
    """)
    assert found == ["flow.yaml:1:1: id: required property is missing"]


def test_missing_task_id_and_required_property() -> None:
    found = problems("""
        id: missing
        namespace: unit.loader
        tasks:
          - type: Log
            message: hi
          - id: second
            type: Log
    """)
    assert "flow.yaml:4:5: tasks[0].id: required property is missing" in found
    assert "flow.yaml:6:5: tasks[1].message (task 'second'): required property is missing" in found


def test_several_problems_are_reported_at_once() -> None:
    found = problems("""
        id: many
        namespace: unit.loader
        tasks:
          - id: a
            type: Log
            message: hi
            bogus: 1
          - id: b
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT1S
            other: 2
    """)
    assert len(found) == 2
    assert found[0].startswith("flow.yaml:7:5: tasks[0].bogus")
    assert found[1].startswith("flow.yaml:11:5: tasks[1].other")


def test_duplicate_task_ids_nested() -> None:
    found = problems("""
        id: dup
        namespace: unit.loader
        tasks:
          - id: same
            type: Log
            message: one
          - id: seq
            type: io.kestra.plugin.core.flow.Sequential
            tasks:
              - id: same
                type: Log
                message: two
    """)
    assert found == ["flow.yaml:10:9: tasks[1].tasks[0].id: duplicate task id 'same'"]


def test_duplicate_task_ids_across_errors_and_dag() -> None:
    found = problems("""
        id: dup
        namespace: unit.loader
        tasks:
          - id: dag
            type: io.kestra.plugin.core.flow.Dag
            tasks:
              - task:
                  id: x
                  type: Log
                  message: one
        errors:
          - id: x
            type: Log
            message: two
    """)
    assert found == ["flow.yaml:12:5: errors[0].id: duplicate task id 'x'"]


def test_unknown_task_type() -> None:
    found = problems("""
        id: unknown_type
        namespace: unit.loader
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Nope
            message: hi
    """)
    assert len(found) == 1
    assert found[0].startswith("flow.yaml:4:5: tasks[0] (task 'a'): ")
    assert "unknown task type 'io.kestra.plugin.core.log.Nope'" in found[0]


def test_bad_worker_group_key() -> None:
    found = problems("""
        id: bad_group
        namespace: unit.loader
        tasks:
          - id: a
            type: Log
            message: hi
            workerGroup:
              key: "bad key!"
    """)
    assert len(found) == 1
    assert found[0].startswith("flow.yaml:8:7: tasks[0].workerGroup.key (task 'a'): ")
    assert "'bad key!'" in found[0]


def test_bad_flow_level_worker_group_fallback() -> None:
    found = problems("""
        id: bad_fallback
        namespace: unit.loader
        workerGroup:
          key: gpu
          fallback: SOMETIMES
        tasks:
          - id: a
            type: Log
            message: hi
    """)
    assert len(found) == 1
    assert found[0].startswith("flow.yaml:5:3: workerGroup.fallback: ")


def test_templated_worker_group_key_is_accepted() -> None:
    flow = load("""
        id: templated_group
        namespace: unit.loader
        workerGroup:
          key: "{% if true %}cpu{% endif %}"
        tasks:
          - id: a
            type: Log
            message: hi
            workerGroup:
              key: "{{ inputs.group }}"
              fallback: FAIL
    """)
    task = flow.tasks[0]
    assert task.workerGroup is not None
    assert task.workerGroup.key == "{{ inputs.group }}"
    assert task.workerGroup.fallback == "FAIL"
    assert flow.workerGroup is not None and flow.workerGroup.key.startswith("{%")


@pytest.mark.parametrize("text, line", [
    ("id: a\nnamespace: unit.loader\ntasks:\n  - id: a\n   type: Log\n", 5),
    ("id: a\nnamespace: unit.loader\ntasks: [\n", 4),
    ("id: a\nnamespace: unit.loader\n\tbad: tab\n", 3),
], ids=["bad-indent", "unclosed-list", "tab"])
def test_invalid_yaml_syntax_names_the_line(text: str, line: int) -> None:
    with pytest.raises(FlowValidationError) as info:
        load_flow(text, "syntax.yaml")
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(f"syntax.yaml:{line}:")
    assert "invalid YAML" in info.value.problems[0]


def test_empty_file_and_non_mapping() -> None:
    with pytest.raises(FlowValidationError, match=r"^empty.yaml:1:1: .*empty"):
        load_flow("", "empty.yaml")
    with pytest.raises(FlowValidationError, match=r"^list.yaml:1:1: .*mapping"):
        load_flow("- a\n- b\n", "list.yaml")


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(FlowValidationError, match="nowhere.yaml: cannot read"):
        load_flow_file(tmp_path / "nowhere.yaml")


def test_empty_task_list_is_rejected() -> None:
    found = problems("id: a\nnamespace: unit.loader\ntasks: []\n")
    assert len(found) == 1
    assert found[0].startswith("flow.yaml:3:1: tasks: ")


@pytest.mark.parametrize("type_name", [
    "io.kestra.plugin.core.log.Log", "io.kestra.core.tasks.log.Log", "Log",
])
def test_log_type_names_are_accepted(type_name: str) -> None:
    flow = load(f"""
        id: names
        namespace: unit.loader
        tasks:
          - id: a
            type: {type_name}
            message: hi
    """)
    assert isinstance(flow.tasks[0], Log)
    assert flow.tasks[0].type == type_name


def test_legacy_flowable_names_are_accepted() -> None:
    flow = load("""
        id: legacy
        namespace: unit.loader
        tasks:
          - id: seq
            type: io.kestra.core.tasks.flows.Sequential
            tasks:
              - id: nap
                type: io.kestra.core.tasks.flows.Sleep
                duration: pt0.25s
          - id: dag
            type: Dag
            tasks:
              - task:
                  id: a
                  type: io.kestra.core.tasks.log.Log
                  message: x
    """)
    assert isinstance(flow.tasks[0], Sequential)
    nap = flow.tasks[0].tasks[0]
    assert isinstance(nap, Sleep)
    assert nap.duration.total_seconds() == 0.25  # lower-case ISO designators, as Kestra accepts
    assert isinstance(flow.tasks[1], Dag)
    assert [t.id for t in flow.all_tasks()] == ["seq", "nap", "dag", "a"]


def test_task_defaults_are_applied() -> None:
    flow = load("""
        id: defaults
        namespace: unit.loader
        taskDefaults:
          - type: io.kestra.plugin.core.log.Log
            values:
              level: WARN
              message: default message
        tasks:
          - id: plain
            type: io.kestra.plugin.core.log.Log
          - id: own
            type: io.kestra.plugin.core.log.Log
            message: own message
            level: ERROR
          - id: seq
            type: io.kestra.plugin.core.flow.Sequential
            tasks:
              - id: nested
                type: io.kestra.plugin.core.log.Log
          - id: other_type
            type: io.kestra.plugin.core.debug.Return
            format: untouched
    """)
    tasks = {t.id: t for t in flow.all_tasks()}
    assert (tasks["plain"].level, tasks["plain"].message) == ("WARN", "default message")
    assert (tasks["own"].level, tasks["own"].message) == ("ERROR", "own message")
    assert (tasks["nested"].level, tasks["nested"].message) == ("WARN", "default message")
    assert tasks["other_type"].format == "untouched"


def test_forced_plugin_defaults_override_the_task() -> None:
    flow = load("""
        id: forced
        namespace: unit.loader
        pluginDefaults:
          - type: io.kestra.plugin.core.log.Log
            forced: true
            values:
              level: DEBUG
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: hi
            level: ERROR
    """)
    assert flow.tasks[0].level == "DEBUG"


def test_task_defaults_with_an_unknown_property_are_reported() -> None:
    found = problems("""
        id: bad_defaults
        namespace: unit.loader
        taskDefaults:
          - type: io.kestra.plugin.core.log.Log
            values:
              colour: red
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: hi
    """)
    assert len(found) == 1
    assert "tasks[0].colour (task 'a'): unknown property" in found[0]


def test_dag_depending_on_an_unknown_task_is_rejected() -> None:
    found = problems("""
        id: dag_unknown
        namespace: unit.loader
        tasks:
          - id: dag
            type: io.kestra.plugin.core.flow.Dag
            tasks:
              - task:
                  id: a
                  type: Log
                  message: x
                dependsOn: [nope]
    """)
    assert len(found) == 1
    assert found[0].startswith("flow.yaml:4:5: tasks[0] (task 'dag'): ")
    assert "'nope'" in found[0]


def test_dag_with_a_cycle_is_rejected() -> None:
    found = problems("""
        id: dag_cycle
        namespace: unit.loader
        tasks:
          - id: dag
            type: io.kestra.plugin.core.flow.Dag
            tasks:
              - task:
                  id: a
                  type: Log
                  message: x
                dependsOn: [b]
              - task:
                  id: b
                  type: Log
                  message: y
                dependsOn: [a]
    """)
    assert len(found) == 1
    assert found[0].startswith("flow.yaml:4:5: tasks[0] (task 'dag'): ")
    assert "cycle" in found[0]


def test_mapping_keys_are_their_text_as_written() -> None:
    """Kestra reads every key as text: YAML 1.1's `on`, `yes`, `off` (booleans) and `1` (a number) stay the words
    written, so a Switch case `on` is taken for the value "on"."""
    flow = load("""
        id: keys
        namespace: t
        variables:
          on: 1
          12:30: lunch
        tasks:
          - id: switch
            type: io.kestra.plugin.core.flow.Switch
            value: "on"
            cases:
              on: [{id: is_on, type: io.kestra.plugin.core.log.Log, message: "on"}]
              off: [{id: is_off, type: io.kestra.plugin.core.log.Log, message: "off"}]
              yes: [{id: is_yes, type: io.kestra.plugin.core.log.Log, message: "yes"}]
              1: [{id: is_one, type: io.kestra.plugin.core.log.Log, message: "1"}]
              true: [{id: is_true, type: io.kestra.plugin.core.log.Log, message: "true"}]
        """)
    assert list(flow.tasks[0].cases) == ["on", "off", "yes", "1", "true"]  # type: ignore[attr-defined]
    assert flow.variables == {"on": 1, "12:30": "lunch"}
