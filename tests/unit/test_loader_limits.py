"""Valid-looking YAML that must not take a worker down or crash the loader: each is a clear error, fast."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app import settings as app_settings
from app.errors import FlowValidationError
from app.model.loader import load_flow, load_flow_file
from app.settings import Limits, Settings

TASKS = "tasks:\n  - {id: a, type: io.kestra.plugin.core.log.Log, message: x}\n"


def laughs(levels: int) -> str:
    """The "billion laughs": each level a list of nine aliases of the level before it (9**levels strings)."""
    lines = ['  l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"  l{i}: &l{i} [{','.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "id: f\nnamespace: company.team\nvariables:\n" + "\n".join(lines) + "\n" + TASKS


def refused(text: str) -> str:
    started = time.monotonic()
    with pytest.raises(FlowValidationError) as raised:
        load_flow(text, "flow.yaml")
    assert time.monotonic() - started < 2.0
    return str(raised.value)


@pytest.mark.parametrize("levels", [6, 8, 12])
def test_an_alias_bomb_is_refused_quickly_naming_its_line(levels: int) -> None:
    message = refused(laughs(levels))
    assert message.startswith("flow.yaml:") and "expands to more than 100000 nodes" in message


def test_a_few_aliases_still_load() -> None:
    flow = load_flow(laughs(2))
    assert len(flow.variables["l2"]) == 9
    assert flow.variables["l2"][8][8] == ["lol"] * 9


def test_merge_keys_are_supported() -> None:
    flow = load_flow("id: f\nnamespace: company.team\nvariables:\n  base: &base {region: eu, size: 2}\n"
                     "  job:\n    <<: *base\n    size: 3\n" + TASKS)
    assert flow.variables["job"] == {"region": "eu", "size": 3}


@pytest.mark.parametrize(("text", "expected"), [
    ("id: f\nnamespace: company.team\nvariables: &v\n  self: *v\n" + TASKS, "flow.yaml:3:12: a recursive alias"),
    ("id: f\nnamespace: company.team\n" + TASKS.replace("- {", "- !custom {"), "flow.yaml:4:5: unknown YAML tag"),
    ("id: f\nnamespace: company.team\nvariables: {n: " + "9" * 5000 + "}\n" + TASKS, "flow.yaml:3:16: cannot read"),
    ("id: f\nnamespace: company.team\nvariables:\n  ? {a: 1}\n  : 2\n" + TASKS,
     "flow.yaml:4:5: a mapping key must be a scalar"),
    ("id: f\nnamespace: company\x07.team\n" + TASKS, "flow.yaml:2:19: invalid YAML: character U+0007"),
])
def test_malformed_yaml_is_an_error_naming_file_line_and_column(text: str, expected: str) -> None:
    assert refused(text).startswith(expected)


@pytest.fixture
def limits(tmp_path: Path) -> Iterator[Limits]:
    """The process's settings with limits the test may change; the previous settings come back after it."""
    previous = app_settings.configured()
    settings = Settings(home=tmp_path)
    app_settings.configure(settings)
    yield settings.limits
    app_settings.configure(previous)


def test_the_node_bound_is_a_setting(limits: Limits) -> None:
    limits.yaml_nodes = 50
    assert "more than 50 nodes" in refused(laughs(2)) and "CELESTRA_LIMITS__YAML_NODES" in refused(laughs(2))
    limits.yaml_nodes = 1_000
    assert len(load_flow(laughs(2)).variables["l2"]) == 9


def test_a_flow_over_the_size_limit_is_refused_before_it_is_read(limits: Limits, tmp_path: Path) -> None:
    limits.flow_file_bytes = 4096
    text = "id: f\nnamespace: company.team\ndescription: " + "x" * 5000 + "\n" + TASKS
    assert "over the limit of 4096" in refused(text)
    big = tmp_path / "big.yaml"
    big.write_text(text)
    with pytest.raises(FlowValidationError) as raised:
        load_flow_file(big)
    assert str(raised.value).startswith(f"{big}: the flow is {len(text)} bytes")


def test_a_file_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"id: f\nnamespace: company.team\ndescription: caf\xe9\n" + TASKS.encode())
    with pytest.raises(FlowValidationError) as raised:
        load_flow_file(bad)
    assert str(raised.value).startswith(f"{bad}:3: not UTF-8 text (byte 0xe9")
