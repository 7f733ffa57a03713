"""Property-based fuzzing of what a flow's author controls: flow files, input values and templates.

Each property: whatever the input, the result is a value or the component's own clear error (FlowValidationError,
InputError, TemplateError), never another exception, and each case ends within its time budget without the process
growing past its memory budget. Case counts are printed in pytest's summary (`fuzz:` lines). Failing cases are
shrunk by hypothesis and printed as a reproducible example.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import settings as app_settings
from app import templating
from app.errors import FlowValidationError
from app.model.inputs import InputError, parse_input, resolve_inputs
from app.model.loader import load_flow
from app.settings import Limits, Settings

FLOWS = Path(__file__).resolve().parents[2] / "flows"
SEEDS = sorted(path.read_text() for path in FLOWS.glob("*.yaml"))
CASE_SECONDS = 8.0  # the 1 s template budget plus the longest single linear step on a maximal value
RSS_BUDGET = 512 << 20  # how much the process may grow while fuzzing
EXAMPLES = int(os.environ.get("CELESTRA_FUZZ_EXAMPLES", "400"))  # per property; .ci/run runs the default
FUZZ_COUNTS: dict[str, int] = {}  # read by conftest.py for the summary

FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.fixture(scope="module", autouse=True)
def tight_limits(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The default limits, except a shorter template budget so that a slow case shows in seconds."""
    previous = app_settings.configured()
    app_settings.configure(Settings(home=tmp_path_factory.mktemp("fuzz"), limits=Limits(template_seconds=1.0)))
    yield
    app_settings.configure(previous)


class Case:
    """One fuzz case: counted, timed, and its memory growth checked against the module's starting point."""

    baseline = rss()

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> Case:
        FUZZ_COUNTS[self.name] = FUZZ_COUNTS.get(self.name, 0) + 1
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        elapsed = time.monotonic() - self.started
        assert elapsed < CASE_SECONDS, f"{self.name}: one case took {elapsed:.2f}s"
        grown = rss() - Case.baseline
        assert grown < RSS_BUDGET, f"{self.name}: the process grew by {grown >> 20} MiB"


# -- flow files ------------------------------------------------------------------------------------------------
YAML_PIECES = ["&a ", "*a", "<<: ", "!custom ", "!!python/object ", ": ", "- ", "{", "}", "[", "]", "\t", "\x00",
               "\x07", "\ufeff", "'", '"', "#", "|", ">", "?", "%YAML 1.1\n", "---\n", "...\n", "9" * 5000, "~",
               "{{ ", " }}", "\n  ", "\n", "id: ", "type: ", "tasks:", "&b [*a, *a, *a, *a, *a, *a, *a, *a, *a]"]


@st.composite
def mutated_flow(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "duplicate_line", "replace"]))
        if action == "insert":
            text = text[:at] + draw(st.sampled_from(YAML_PIECES) | st.text(max_size=8)) + text[at:]
        elif action == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 40)):]
        elif action == "duplicate_line":
            lines = text.splitlines(keepends=True) or [""]
            index = min(at, len(lines) - 1)
            lines.insert(index, lines[index])
            text = "".join(lines)
        else:
            text = text[:at] + draw(st.sampled_from(YAML_PIECES)) + text[at + 1:]
    return text


SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20)
KEYS = st.sampled_from(["id", "namespace", "tasks", "type", "message", "inputs", "triggers", "errors", "finally",
                        "retry", "timeout", "values", "then", "else", "cases", "workerGroup", "key", "labels",
                        "variables", "outputs", "pluginDefaults", "concurrency", "disabled", "format"]) | st.text(
    max_size=6)
TYPES = st.sampled_from(["io.kestra.plugin.core.log.Log", "Log", "io.kestra.plugin.core.flow.If",
                         "io.kestra.plugin.core.flow.ForEach", "io.kestra.plugin.core.flow.Parallel",
                         "io.kestra.plugin.scripts.shell.Commands", "io.kestra.plugin.core.flow.Subflow",
                         "io.kestra.plugin.core.trigger.Schedule", "STRING", "nope"])
TREES = st.recursive(SCALARS | TYPES, lambda children: st.lists(children, max_size=4) | st.dictionaries(
    KEYS, children, max_size=5), max_leaves=30)


@FUZZ
@given(mutated_flow())
def test_a_mutated_flow_loads_or_is_a_clear_error(text: str) -> None:
    with Case("loader, mutated flows"):
        try:
            load_flow(text, "fuzz.yaml")
        except FlowValidationError as exc:
            assert exc.problems and all(problem.startswith("fuzz.yaml") for problem in exc.problems), exc.problems


@FUZZ
@given(TREES, st.sampled_from(SEEDS))
def test_a_generated_document_loads_or_is_a_clear_error(tree: Any, seed: str) -> None:
    base = yaml.safe_load(seed)
    document = {**base, "tasks": [tree]} if isinstance(tree, dict) else {**base, "variables": {"v": tree}}
    with Case("loader, generated documents"):
        try:
            load_flow(yaml.safe_dump(document), "fuzz.yaml")
        except FlowValidationError as exc:
            assert exc.problems


# -- inputs ------------------------------------------------------------------------------------------------------
INPUT_TYPES = ["STRING", "INT", "FLOAT", "BOOLEAN", "DATETIME", "DATE", "TIME", "DURATION", "JSON", "YAML", "URI",
               "EMAIL", "SELECT", "MULTISELECT", "ARRAY", "SECRET"]
VALUES = st.recursive(SCALARS | st.sampled_from(["PT5M", "2026-12-01", "12:00:00", "2026-12-01T10:00:00Z", "a@b.c",
                                                  "[1, 2]", '{"a": 1}', "a: [1, 2]", "http://x", "1e999", "-0"]),
                      lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5),
                                                                                        children, max_size=4),
                      max_leaves=12)


@st.composite
def declaration(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(INPUT_TYPES))
    data: dict[str, Any] = {"id": "x", "type": kind, "required": draw(st.booleans())}
    if kind in ("SELECT", "MULTISELECT"):
        data["values"] = draw(st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=4))
    if kind == "ARRAY":
        data["itemType"] = draw(st.sampled_from(["STRING", "INT", "FLOAT", "BOOLEAN", "DATE", "JSON"]))
    if kind in ("INT", "FLOAT") and draw(st.booleans()):
        data["min"], data["max"] = sorted([draw(st.integers(-100, 100)), draw(st.integers(-100, 100))])
    if kind == "STRING" and draw(st.booleans()):
        data["validator"] = draw(st.sampled_from(["^[a-z]+$", "(a+)+$", ".*", "[0-9]{2,}"]))
    return data


@FUZZ
@given(declaration(), VALUES)
def test_an_input_value_is_coerced_or_is_a_clear_error(data: dict[str, Any], value: Any) -> None:
    definition = parse_input(data)
    with Case("input coercion"):
        try:
            resolve_inputs([definition], {"x": value})
        except InputError as exc:
            assert str(exc)


# -- templates ----------------------------------------------------------------------------------------------------
ATOMS = ["1", "0", "-1", "999999999", "9", "2.5", "'x'", "'abc'", "''", "[1, 2, 3]", "{'a': 1}", "null", "true",
         "items", "name", "missing", "inputs.a", "outputs", "range(5)", "range(100000)", "now()"]
OPERATORS = [" * ", " ** ", " + ", " - ", " / ", " // ", " % ", " ~ ", " == ", " and ", " or ", " ?? ", "..",
             " in ", " is defined and ", " > "]
FILTERS = sorted(name for name in ("upper", "lower", "length", "join", "first", "last", "keys", "default('d')",
                                   "json", "toJson", "jq('.')", "jq('.[]')", "base64encode", "base64decode",
                                   "split(',')", "replace('a', 'bb')", "center(999999)", "indent(99)",
                                   "abbreviate(2)", "slice(0, 2)", "chunk(1)", "distinct", "sort", "rsort",
                                   "number", "date('yyyy')", "dateAdd(1, 'DAYS')", "sha256", "yaml", "string",
                                   "urlencode", "title", "trim", "escapeChar('single')", "startsWith('a')",
                                   "timestamp", "abs", "reverse", "merge({'b': 2})", "values", "format(1)"))


@st.composite
def expression(draw: st.DrawFn, depth: int = 0) -> str:
    if depth > 3 or draw(st.integers(0, 3)) == 0:
        text = draw(st.sampled_from(ATOMS))
    elif draw(st.booleans()):
        text = f"({draw(expression(depth + 1))}{draw(st.sampled_from(OPERATORS))}{draw(expression(depth + 1))})"
    else:
        text = draw(expression(depth + 1))
    for _ in range(draw(st.integers(0, 2))):
        text = f"{text} | {draw(st.sampled_from(FILTERS))}"
    return text


@st.composite
def template(draw: st.DrawFn) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["print", "text", "for", "if", "set"]))
        body = draw(expression())
        if kind == "print":
            parts.append("{{ " + body + " }}")
        elif kind == "text":
            parts.append(draw(st.text(max_size=10)))
        elif kind == "for":
            parts.append("{% for i in " + body + " %}{{ i }}{% endfor %}")
        elif kind == "if":
            parts.append("{% if " + body + " %}y{% else %}n{% endif %}")
        else:
            parts.append("{% set s = " + body + " %}{% set s = s ~ s %}{{ s | length }}")
    return "".join(parts)


CONTEXT = {"items": list(range(1000)), "name": "world", "inputs": {"a": "A"}, "outputs": {"t": {"value": 1}}}


@FUZZ
@given(template())
def test_a_template_renders_or_is_a_clear_error(source: str) -> None:
    with Case("templates"):
        try:
            templating.render(source, CONTEXT)
        except templating.TemplateError as exc:
            assert str(exc).startswith("Unable to render")


@FUZZ
@given(expression())
def test_an_expression_evaluates_or_is_a_clear_error(source: str) -> None:
    with Case("template expressions"):
        try:
            templating.evaluate("{{ " + source + " }}", CONTEXT)
        except templating.TemplateError as exc:
            assert str(exc).startswith("Unable to render")
