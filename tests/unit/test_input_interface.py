"""What a flow asks for and gives beyond plain values: inputs that apply only when others say so (`dependsOn`),
labels and suggestions for people (`displayName`, `prefill`), and outputs that may be left out (`required`).
Executions run embedded; `celestra flow describe` is invoked as a user would."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.errors import FlowValidationError
from app.model.inputs import InputError
from app.model.loader import load_flow

CLOUDS = """
id: clouds
namespace: company.team
inputs:
  - id: cloud
    type: SELECT
    values: [AWS, GCP]
    defaults: AWS
  - id: region
    type: STRING
    displayName: AWS region
    description: Where the bucket lives
    dependsOn:
      inputs: [cloud]
      condition: "{{ inputs.cloud == 'AWS' }}"
  - id: zone
    type: STRING
    dependsOn:
      inputs: [cloud]
      condition: "{{ inputs.cloud == 'GCP' }}"
  - id: machine
    type: STRING
    required: false
    prefill: e2-small
    dependsOn:
      inputs: [zone]
  - id: cores
    type: INT
    required: false
tasks:
  - id: show
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs | keys | sort | join(',') }}"
outputs:
  - id: where
    type: STRING
    displayName: Where it ran
    value: "{{ inputs.region ?? inputs.zone }}"
  - id: cores
    type: INT
    required: false
    value: "{{ inputs.cores ?? '' }}"
"""


def flow(extra_inputs: str = "", source: str = CLOUDS) -> str:
    return source.replace("tasks:\n", textwrap.indent(textwrap.dedent(extra_inputs).lstrip("\n"), "  ") + "tasks:\n", 1)


def test_an_input_whose_condition_is_false_is_off_not_required_and_absent(client: Any) -> None:
    ex = client.run(flow(), {"region": "eu-west-1"})
    assert ex.state.value == "SUCCESS", ex.error
    assert ex.inputs == {"cloud": "AWS", "region": "eu-west-1", "cores": None}  # zone off; machine as zone is
    assert ex.task_runs[0].outputs["value"] == "cloud,cores,region"
    assert ex.outputs == {"where": "eu-west-1"}  # cores has no value and is not required: left out
    assert client.run(flow(), {"region": "x", "cores": "4"}).outputs == {"where": "x", "cores": 4}


def test_the_other_branch_is_on_and_its_dependants_with_it(client: Any) -> None:
    ex = client.run(flow(), {"cloud": "GCP", "zone": "europe-west1-b", "region": "ignored"})
    assert ex.state.value == "SUCCESS", ex.error
    assert ex.inputs == {"cloud": "GCP", "zone": "europe-west1-b", "machine": None, "cores": None}
    assert ex.outputs == {"where": "europe-west1-b"}


def test_a_missing_input_that_is_on_is_named_with_its_display_name(client: Any) -> None:
    with pytest.raises(InputError, match=r"^Missing required input 'region' \(AWS region\)$"):
        client.run(flow())
    with pytest.raises(InputError, match=r"^Missing required input 'zone'$"):
        client.run(flow(), {"cloud": "GCP"})


def test_a_dependency_declared_later_is_resolved_first(client: Any) -> None:
    source = """
    id: later
    namespace: company.team
    inputs:
      - id: detail
        type: INT
        dependsOn:
          inputs: [verbose]
          condition: "{{ inputs.verbose }}"
      - id: verbose
        type: BOOLEAN
        defaults: false
    tasks:
      - id: show
        type: io.kestra.plugin.core.debug.Return
        format: "{{ inputs }}"
    """
    assert client.run(textwrap.dedent(source)).inputs == {"verbose": False}
    assert client.run(textwrap.dedent(source), {"verbose": "true", "detail": "3"}).inputs == {
        "detail": 3, "verbose": True}


def test_a_condition_that_cannot_render_fails_naming_the_input(client: Any) -> None:
    source = flow("""
      - id: broken
        type: STRING
        dependsOn:
          inputs: [cloud]
          condition: "{{ inputs.nope.deeper }}"
    """)
    with pytest.raises(InputError, match=r"Input 'broken': dependsOn condition: .*nope"):
        client.run(source, {"region": "x"})


@pytest.mark.parametrize(("extra", "problem"), [
    ("""
      - id: orphan
        type: STRING
        dependsOn:
          inputs: [nowhere]
    """, r"inputs\[5\]\.dependsOn: Input with id 'orphan' depends on a non-existent input 'nowhere'\."),
    ("""
      - id: a
        type: STRING
        dependsOn: {inputs: [b]}
      - id: b
        type: STRING
        dependsOn: {inputs: [a]}
    """, r"inputs\[5\]\.dependsOn: Cycle dependency detected for input with id 'a': \['a', 'b', 'a'\]"),
])
def test_validation_refuses_unknown_dependencies_and_cycles(extra: str, problem: str) -> None:
    with pytest.raises(FlowValidationError) as refused:
        load_flow(flow(extra), "clouds.yaml")
    assert any(re.search(r"^clouds\.yaml:\d+:\d+: " + problem, p)
               for p in refused.value.problems), refused.value.problems


def test_prefill_suggests_but_never_supplies_a_value(client: Any) -> None:
    ex = client.run(flow(), {"cloud": "GCP", "zone": "z"})
    assert ex.inputs["machine"] is None  # the prefill e2-small was not used
    assert client.run(flow(), {"cloud": "GCP", "zone": "z", "machine": "e2-small"}).inputs["machine"] == "e2-small"


@pytest.mark.parametrize(("extra", "problem"), [
    ("""
      - id: both
        type: STRING
        defaults: a
        prefill: b
    """, "`prefill` and `defaults` cannot both be set"),
    ("""
      - id: count
        type: INT
        required: false
        prefill: many
    """, "invalid prefill: expected an integer"),
])
def test_prefill_with_defaults_or_of_the_wrong_type_is_refused(extra: str, problem: str) -> None:
    with pytest.raises(FlowValidationError, match=problem):
        load_flow(flow(extra))


def test_a_required_output_that_is_null_fails_the_execution_naming_it(client: Any) -> None:
    source = CLOUDS.replace("  - id: cores\n    type: INT\n    required: false\n    value",
                            "  - id: cores\n    type: INT\n    displayName: CPU cores\n    value")
    ex = client.run(source, {"region": "eu-west-1"})
    assert ex.state.value == "FAILED"
    assert "Missing required output 'cores' (CPU cores)" in (ex.error or ""), ex.error


def test_flow_describe_shows_labels_hints_and_conditions(client: Any, tmp_path: Path) -> None:
    path = tmp_path / "clouds.yaml"
    path.write_text(CLOUDS)
    shown = CliRunner().invoke(cli, ["flow", "describe", str(path)])
    assert shown.exit_code == 0, shown.output
    lines = [" ".join(line.split()) for line in shown.stdout.splitlines()]
    assert lines == [
        "company.team.clouds",
        "input cloud: SELECT, required, defaults 'AWS'",
        "input region \"AWS region\": STRING, required, after cloud, only if {{ inputs.cloud == 'AWS' }} "
        "Where the bucket lives",
        "input zone: STRING, required, after cloud, only if {{ inputs.cloud == 'GCP' }}",
        "input machine: STRING, optional, prefill 'e2-small', after zone",
        "input cores: INT, optional",
        "output where \"Where it ran\": STRING, required",
        "output cores: INT, optional",
    ]
    as_json = json.loads(CliRunner().invoke(cli, ["flow", "describe", str(path), "--json"]).stdout)
    region = as_json["inputs"][1]
    assert (region["displayName"], region["dependsOn"]) == (
        "AWS region", {"inputs": ["cloud"], "condition": "{{ inputs.cloud == 'AWS' }}"})
    assert as_json["inputs"][3]["prefill"] == "e2-small" and as_json["outputs"][0]["displayName"] == "Where it ran"
    client.deploy(CLOUDS)
    deployed = CliRunner().invoke(cli, ["flow", "describe", "company.team", "clouds", "--json"])
    assert json.loads(deployed.stdout) == as_json
