"""The JSON schema of flow files (`celestra schema`) agrees with the loader."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.model.json_schema import flow_json_schema
from app.model.loader import load_flow
from app.model.registry import TYPE_NAMES

REPO = Path(__file__).resolve().parents[2]
FLOWS = sorted([*(REPO / "flows").glob("*.yaml"), *(REPO / "flows").glob("*.yml")])


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return flow_json_schema()


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)  # the schema itself is valid for the draft it declares
    return cls(schema)


def errors(validator: Any, data: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(data)]


def type_enum(definition: dict[str, Any]) -> list[str]:
    prop = definition.get("properties", {}).get("type", {})
    return list(prop.get("enum") or ([prop["const"]] if "const" in prop else []))


def test_schema_shape(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object"
    assert {"id", "namespace", "tasks"} <= set(schema["required"])
    assert schema["additionalProperties"] is False
    assert "finally" in schema["properties"]  # aliases, as written in YAML
    assert "finally_" not in schema["properties"]
    json.dumps(schema)  # serializable as is


def test_every_task_type_name_is_in_the_schema(schema: dict[str, Any]) -> None:
    named = {name for definition in schema["$defs"].values() for name in type_enum(definition)}
    missing = sorted(set(TYPE_NAMES) - named)
    assert missing == []


def test_log_definition(schema: dict[str, Any]) -> None:
    log = [d for d in schema["$defs"].values() if "io.kestra.plugin.core.log.Log" in type_enum(d)]
    assert len(log) == 1
    assert set(type_enum(log[0])) == {"io.kestra.plugin.core.log.Log", "io.kestra.core.tasks.log.Log", "Log"}
    assert "message" in log[0]["properties"]
    assert "message" in log[0]["required"]
    assert log[0]["additionalProperties"] is False


@pytest.mark.parametrize("path", FLOWS, ids=[p.name for p in FLOWS])
def test_example_flows_validate(validator: Any, path: Path) -> None:
    assert errors(validator, yaml.safe_load(path.read_text())) == []


def test_hello_validates(validator: Any) -> None:
    assert errors(validator, yaml.safe_load((REPO / "flows" / "hello.yaml").read_text())) == []


VALID = {
    "flowables": """
        id: flowables
        namespace: unit.schema
        labels:
          - key: team
            value: data
        tasks:
          - id: if
            type: io.kestra.plugin.core.flow.If
            condition: "{{ true }}"
            then:
              - id: a
                type: Log
                message: [one, two]
            else:
              - id: b
                type: io.kestra.core.tasks.log.Log
                message: x
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: [1, 2]
            concurrencyLimit: 0
            tasks:
              - id: nap
                type: io.kestra.plugin.core.flow.Sleep
                duration: PT0.1S
                timeout: PT1S
                retry:
                  type: exponential
                  interval: PT1S
                  maxAttempt: 3
          - id: dag
            type: io.kestra.plugin.core.flow.Dag
            tasks:
              - task:
                  id: c
                  type: io.kestra.plugin.core.debug.Return
                  format: c
                dependsOn: []
          - id: pause
            type: io.kestra.plugin.core.flow.Pause
            delay: PT1S
          - id: sub
            type: io.kestra.plugin.core.flow.Subflow
            namespace: unit.schema
            flowId: other
            inputs:
              x: 1
        finally:
          - id: last
            type: Log
            message: done
    """,
    "inputs_and_groups": """
        id: inputs_and_groups
        namespace: unit.schema
        inputs:
          - id: n
            type: INT
            defaults: 3
          - id: choice
            type: SELECT
            values: [a, b]
        workerGroup:
          key: "{{ inputs.choice }}"
        tasks:
          - id: a
            type: Log
            message: hi
            workerGroup:
              key: gpu
              fallback: FAIL
        outputs:
          - id: out
            type: STRING
            value: "{{ inputs.n }}"
    """,
}


@pytest.mark.parametrize("name", sorted(VALID))
def test_flows_the_loader_accepts_validate(validator: Any, name: str) -> None:
    text = textwrap.dedent(VALID[name]).lstrip()
    load_flow(text, f"{name}.yaml")  # the loader accepts it...
    assert errors(validator, yaml.safe_load(text)) == []  # ...and so does the schema


INVALID = {
    "unknown property": {"id": "a", "type": "io.kestra.plugin.core.log.Log", "message": "x", "mesage": "y"},
    "unknown type": {"id": "a", "type": "io.kestra.plugin.core.log.Nope", "message": "x"},
    "missing message": {"id": "a", "type": "Log"},
    "bad id": {"id": "no spaces allowed", "type": "Log", "message": "x"},
}


@pytest.mark.parametrize("name", sorted(INVALID))
def test_schema_rejects_what_the_loader_rejects(validator: Any, name: str) -> None:
    data = {"id": "bad", "namespace": "unit.schema", "tasks": [INVALID[name]]}
    assert errors(validator, data) != []
    with pytest.raises(Exception, match="tasks"):
        load_flow(yaml.safe_dump(data), "bad.yaml")


def test_schema_rejects_a_flow_without_tasks(validator: Any) -> None:
    assert errors(validator, {"id": "a", "namespace": "unit.schema"}) != []
    assert errors(validator, {"id": "a", "namespace": "unit.schema", "tasks": []}) != []


def test_legacy_input_name_key_validates(validator: Any) -> None:
    text = "id: a\nnamespace: unit.schema\ninputs:\n  - name: x\n    type: STRING\ntasks:\n" \
           "  - id: t\n    type: Log\n    message: hi\n"
    assert load_flow(text, "legacy.yaml").inputs[0].id == "x"
    assert errors(validator, yaml.safe_load(text)) == []
