"""Unit tests for app.templating: Pebble syntax on top of a sandboxed Jinja2 environment."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from app import templating
from app.templating import TemplateError, evaluate, is_truthy, make_render_function, render, render_value


@pytest.fixture
def ctx() -> dict[str, Any]:
    return {
        "inputs": {"failed": "false", "name": "bob", "empty": "", "nothing": None, "count": 3},
        "taskrun": {"id": "tr-1", "value": "v"},
        "outputs": {"fetch": {"body": '{"items": [{"id": 1}, {"id": 2}]}', "values": [1, 2]}},
        "m": {"a": 1, "b": [1, 2]},
        "items": ["x", "y", "z"],
    }


# --------------------------------------------------------------------------- fast path and output


def test_plain_string_is_returned_unchanged_without_jinja() -> None:
    text = "no templates here, even with } and % and {"
    assert render(text, {}) is text


def test_keeps_trailing_newline(ctx: dict[str, Any]) -> None:
    assert render("{{ inputs.name }}\n", ctx) == "bob\n"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ m }}", '{"a":1,"b":[1,2]}'),
        ("{{ items }}", '["x","y","z"]'),
        ("{{ {'k': [true, none, 'é']} }}", '{"k":[true,null,"é"]}'),
        ("{{ true }}/{{ false }}", "true/false"),
        ("[{{ inputs.nothing }}]", "[]"),
        ("{{ 1.5 }} {{ 3 }}", "1.5 3"),
    ],
)
def test_non_string_output(ctx: dict[str, Any], template: str, expected: str) -> None:
    assert render(template, ctx) == expected


# --------------------------------------------------------------------------- strict undefined


def test_undefined_variable_raises_with_readable_message() -> None:
    with pytest.raises(TemplateError) as err:
        render("{{ foo.bar }}", {})
    assert str(err.value) == "Unable to render '{{ foo.bar }}': 'foo' is undefined"


def test_missing_attribute_of_defined_map_raises(ctx: dict[str, Any]) -> None:
    with pytest.raises(TemplateError, match="has no attribute 'nope'"):
        render("{{ inputs.nope }}", ctx)


def test_undefined_in_for_and_filters_raises() -> None:
    with pytest.raises(TemplateError, match="'missing' is undefined"):
        render("{% for x in missing %}{{ x }}{% endfor %}", {})
    with pytest.raises(TemplateError, match="'missing' is undefined"):
        render("{{ missing | upper }}", {})


def test_is_defined_works_on_undefined_chains(ctx: dict[str, Any]) -> None:
    template = "{{ foo is defined }} {{ foo.bar.baz is defined }} {{ inputs.name is defined }}"
    assert render(template, ctx) == "false false true"
    assert render("{{ inputs.zzz is not defined }}", ctx) == "true"
    assert render("{% if outputs.other is defined %}yes{% else %}no{% endif %}", ctx) == "no"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ foo.bar | default('d') }}", "d"),
        ("{{ inputs.nothing | default('d') }}", "d"),
        ("{{ inputs.empty | default('d') }}", "d"),  # Pebble: empty counts as missing
        ("{{ inputs.name | default('d') }}", "bob"),
    ],
)
def test_default_filter(ctx: dict[str, Any], template: str, expected: str) -> None:
    assert render(template, ctx) == expected


# --------------------------------------------------------------------------- Pebble rewrites


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ inputs.missing ?? 'fallback' }}", "fallback"),
        ("{{ inputs.nothing ?? 'fallback' }}", "fallback"),
        ("{{ inputs.name ?? 'fallback' }}", "bob"),
        ("{{ foo.bar.baz ?? inputs.nothing ?? 'third' }}", "third"),
        ("{{ inputs.missing ?? inputs.name ?? 'third' }}", "bob"),
        ("{{ inputs.nothing ??? 'fallback' }}", ""),  # ??? only replaces undefined, not null
        ("{{ inputs.missing ??? 'fallback' }}", "fallback"),
        ("{{ inputs.missing ?? 'abc' | upper }}", "ABC"),  # ?? binds tighter than | in Pebble
        ("{% set v = inputs.missing ?? 7 %}{{ v + 1 }}", "8"),
    ],
)
def test_null_coalescing(ctx: dict[str, Any], template: str, expected: str) -> None:
    assert render(template, ctx) == expected


def test_null_coalescing_does_not_evaluate_unused_fallback(ctx: dict[str, Any]) -> None:
    # Calling an undefined function would raise, so this proves the right side stays lazy.
    assert render("{{ inputs.name ?? undefined_function() }}", ctx) == "bob"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ inputs.failed == 'false' ? 'ok' : 'ko' }}", "ok"),
        ("{{ inputs.failed == 'true' ? 'ok' : 'ko' }}", "ko"),
        ("{{ inputs.failed == 'true' ? ko: taskrun.id }}", "tr-1"),  # ko is undefined but not chosen
        ("{{ inputs.count > 5 ? 'big' : inputs.count > 2 ? 'medium' : 'small' }}", "medium"),
        ("{{ (inputs.count > 1 ? 'a' : 'b') ~ '!' }}", "a!"),
        ("{% set v = inputs.count == 3 ? 'three' : 'other' %}{{ v }}", "three"),
        ("{% if (inputs.name == 'bob' ? true : false) %}y{% endif %}", "y"),
        ("{{ [inputs.count > 1 ? 1 : 2, 3] }}", "[1,3]"),
    ],
)
def test_ternary(ctx: dict[str, Any], template: str, expected: str) -> None:
    assert render(template, ctx) == expected


def test_ternary_chosen_undefined_branch_raises(ctx: dict[str, Any]) -> None:
    with pytest.raises(TemplateError, match="'ko' is undefined"):
        render("{{ inputs.failed == 'false' ? ko: taskrun.id }}", ctx)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ inputs.name equals 'bob' }}", "true"),
        ("{% if inputs.name equals 'alice' %}a{% else %}b{% endif %}", "b"),
        ("{{ null }}", ""),
        ("{{ inputs.nothing == null }}", "true"),
        ("{{ inputs.nothing is null }} {{ inputs.name is null }}", "true false"),
        ("{{ inputs.name is not null }}", "true"),
        ("{{ inputs.empty is empty }} {{ items is empty }} {{ inputs.nothing is empty }}", "true false true"),
        ("{{ outputs.fetch.body is json }} {{ inputs.name is json }}", "true false"),
        ("{{ items contains 'y' }} {{ inputs.name contains 'z' }}", "true false"),
        ("{{ 1..3 }}", "[1,2,3]"),
        ("{% if false %}a{% elseif true %}b{% endif %}", "b"),
        ("{{ 'pre-' ~ inputs.name | upper }}", "PRE-BOB"),  # Pebble: filter applies to the concatenation
        ("{{ not inputs.zzz is defined }}", "true"),
    ],
)
def test_pebble_operators_and_tests(ctx: dict[str, Any], template: str, expected: str) -> None:
    assert render(template, ctx) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ 'is it ? yes : no' }}", "is it ? yes : no"),
        ("{{ 'a ?? b' }}", "a ?? b"),
        ("{{ 'a ??? b' ~ \"c ? d\" }}", "a ??? bc ? d"),
        ('{{ "x equals y" }}', "x equals y"),
        ("{{ 'null contains loop.index 1..2' }}", "null contains loop.index 1..2"),
        ("{{ 'it\\'s ? : ??' }}", "it's ? : ??"),
        ("{{ inputs.name ~ ' ?? ' ~ 'x ? y : z' }}", "bob ?? x ? y : z"),
    ],
)
def test_string_literals_are_not_rewritten(ctx: dict[str, Any], template: str, expected: str) -> None:
    assert render(template, ctx) == expected


def test_comments_and_verbatim_are_left_alone() -> None:
    assert render("a{# x ?? y equals null #}b", {}) == "ab"
    assert render("{% verbatim %}{{ a ?? b }}{% endverbatim %}", {}) == "{{ a ?? b }}"
    assert render("{% raw %}{{ x }}{% endraw %}", {}) == "{{ x }}"


# --------------------------------------------------------------------------- loops and maps


def test_error_logs_callable_in_for_loop_with_whitespace_control() -> None:
    def error_logs() -> list[dict[str, str]]:
        return [{"taskId": "t1", "message": "boom"}, {"taskId": "t2", "message": "bang"}]

    template = "Errors:\n{%- for log in errorLogs() %}\n- {{ log.taskId }}: {{ log.message }}\n{%- endfor %}"
    assert render(template, {"errorLogs": error_logs}) == "Errors:\n- t1: boom\n- t2: bang"


def test_context_callables_with_args_work_in_sandbox() -> None:
    calls: list[str] = []

    def secret(name: str) -> str:
        calls.append(name)
        return f"s3cr3t-{name}"

    assert render("{{ secret('API_KEY') }}", {"secret": secret}) == "s3cr3t-API_KEY"
    assert calls == ["API_KEY"]


def test_loop_index_is_zero_based_like_pebble(ctx: dict[str, Any]) -> None:
    template = "{% for i in items %}{{ loop.index }}{{ i }}{% if not loop.last %},{% endif %}{% endfor %}"
    assert render(template, ctx) == "0x,1y,2z"


def test_map_iteration_yields_entries(ctx: dict[str, Any]) -> None:
    assert render("{% for e in m %}{{ e.key }}={{ e.value }};{% endfor %}", ctx) == "a=1;b=[1,2];"
    assert render("{% for k, v in m %}{{ k }}{{ v }}{% endfor %}", ctx) == "a1b[1,2]"


def test_map_keys_win_over_dict_methods(ctx: dict[str, Any]) -> None:
    assert render("{{ outputs.fetch.values }}", ctx) == "[1,2]"
    assert render("{% for k, v in m.items() %}{{ k }}{% endfor %}", ctx) == "ab"


# --------------------------------------------------------------------------- filters and functions


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ m | json }}", '{"a":1,"b":[1,2]}'),
        ("{{ m | toJson }}", '{"a":1,"b":[1,2]}'),
        ("{{ ('{\"a\": 2}' | fromJson).a }}", "2"),
        ("{{ json('[1, 2]') | last }}", "2"),
        ("{{ items | first }} {{ items | last }} {{ 'abc' | first }}", "x z a"),
        ("{{ m | keys }} {{ m | values }} {{ items | length }}", '["a","b"] [1,[1,2]] 3'),
        ("{{ items | join('-') }}", "x-y-z"),
        ("{{ 'a,b,,' | split(',') }}", '["a","b"]'),
        ("{{ ' Hi ' | trim | upper }} {{ 'Hi' | lower }}", "HI hi"),
        ("{{ 'hello wORLD' | capitalize }}|{{ 'hello wORLD' | title }}", "Hello wORLD|Hello WORLD"),
        ("{{ -4 | abs }} {{ '12' | number + 1 }} {{ '2.5' | number }}", "4 13 2.5"),
        ("{{ 'hello' | replace({'l': 'L'}) }} {{ 'hello' | replace('h', 'J') }}", "heLLo Jello"),
        ("{{ 'a1b22' | replace({'(\\\\d+)': '<$1>'}, regexp=true) }}", "a<1>b<22>"),
        ("{{ 'a/b/c' | substringBefore('/') }} {{ 'a/b/c' | substringAfter('/') }}", "a b/c"),
        ("{{ 'a/b/c' | substringBeforeLast('/') }} {{ 'a/b/c' | substringAfterLast('/') }}", "a/b c"),
        ("{{ 'kestra' is startsWith('kes') }} {{ 'kestra' | endsWith('x') }}", "true false"),
        ("{{ 'Hello Wörld_x!' | slugify }}", "hello-world-x"),
        ("{{ \"it's\" | escapeChar('single') }}", "it\\'s"),
        ("{{ 'abc' | base64encode }} {{ 'YWJj' | base64decode }}", "YWJj abc"),
        ("{{ 'a b&c' | urlencode }} {{ 'a+b%26c' | urldecode }}", "a+b%26c a b&c"),
        ("{{ 'abc' | md5 }}", "900150983cd24fb0d6963f7d28e17f72"),
        ("{{ 'abc' | sha256 }}", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("{{ range(1, 3) }} {{ max(4, 9, 2) }}", "[1,2,3] 9"),
        ("{{ [1, 2, 3] | sort | reverse | list }}", "[3,2,1]"),  # Jinja builtins remain available
    ],
)
def test_filters(ctx: dict[str, Any], template: str, expected: str) -> None:
    assert render(template, ctx) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ {'a': 1} | merge({'b': 2}) }}", '{"a":1,"b":2}'),
        ("{{ {'a': 1} | merge(['x']) }}", '{"a":1,"x":"x"}'),
        ("{{ [1] | merge([2, 3]) }}", "[1,2,3]"),
        ("{{ ([1] | merge({'k': 2}) | last).value }}", "2"),
        ("{{ null | merge([1]) }} {{ [1] | merge(null) }}", "[1] [1]"),
    ],
)
def test_merge_follows_pebble(template: str, expected: str) -> None:
    assert render(template, {}) == expected


@pytest.mark.parametrize(("template", "message"), [
    ("{{ 'abc' | merge({'b': 2}) }}", "the value filtered is a str, not a map or a list"),
    ("{{ [1] | merge(3) }}", "only a map or a list can be merged into a list, not int"),
    ("{{ {'a': 1} | merge('x') }}", "only a map or a list can be merged into a map, not str"),
    ("{{ null | merge(null) }}", "the two values to merge are null"),
])
def test_merge_refuses_what_pebble_refuses(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        render(template, {})


def test_jq_returns_list_of_results(ctx: dict[str, Any]) -> None:
    assert evaluate("{{ outputs.fetch.body | jq('.items[].id') }}", ctx) == [1, 2]
    assert evaluate("{{ m | jq('.a') }}", ctx) == [1]
    assert render("{{ m | jq('.b') | first }}", ctx) == "[1,2]"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ d | date('yyyy-MM-dd') }}", "2024-03-10"),
        ("{{ d | date(\"yyyy-MM-dd'T'HH:mm:ss\") }}", "2024-03-10T15:04:05"),
        ("{{ d | date('dd/MM/yy HH:mm:ss.SSS') }}", "10/03/24 15:04:05.123"),
        ("{{ d | date('HH:mm XXX', timeZone='Europe/Paris') }}", "16:04 +01:00"),
        ("{{ d | date('EEE, MMMM d') }}", "Sun, March 10"),
        ("{{ d | date }}", "2024-03-10T15:04:05.123456Z"),
        ("{{ d | dateAdd(-1, 'DAYS', format='yyyy-MM-dd') }}", "2024-03-09"),
        ("{{ d | dateAdd(1, 'MONTHS') }}", "2024-04-10T15:04:05.123456Z"),
        ("{{ d | timestamp }} {{ d | timestampMicro }}", "1710083045 1710083045123456"),
        ("{{ dt | date('yyyy-MM-dd HH:mm') }}", "2024-01-02 03:04"),
        ("{{ '10/03/2024' | date('yyyy-MM-dd', existingFormat='dd/MM/yyyy') }}", "2024-03-10"),
    ],
)
def test_date_filters(template: str, expected: str) -> None:
    context = {"d": "2024-03-10T15:04:05.123456Z", "dt": datetime(2024, 1, 2, 3, 4, tzinfo=UTC)}
    assert render(template, context) == expected


def test_now_is_iso_with_timezone() -> None:
    value = render("{{ now() }}", {})
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None
    assert abs((datetime.now(UTC) - parsed).total_seconds()) < 60
    assert render("{{ now() | date('yyyy') }}", {}) == str(datetime.now(UTC).year)


# --------------------------------------------------------------------------- render() recursion


def test_make_render_function_renders_until_fixed_point() -> None:
    context: dict[str, Any] = {
        "vars": {"first": "1", "second": "{{vars.first}} > 2", "third": "{{vars.second}} > 3"}
    }
    context["render"] = make_render_function(context)
    assert render("{{ render(vars.third) }}", context) == "1 > 2 > 3"
    assert render("{{ render(vars.third, recursive=false) }}", context) == "{{vars.first}} > 2 > 3"
    assert context["render"]("{{ vars.first }}") == "1"


def test_make_render_function_stops_after_bounded_rounds() -> None:
    context: dict[str, Any] = {"vars": {"loop": "x{{ vars.loop }}"}}
    fn: Callable[[str], str] = make_render_function(context)
    result = fn("{{ vars.loop }}")
    assert result.startswith("x" * 9)  # no infinite loop: bounded number of passes


# --------------------------------------------------------------------------- evaluate / render_value


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("{{ [1, 2] }}", [1, 2]),
        ("{{ m }}", {"a": 1, "b": [1, 2]}),
        ("  {{ inputs.count > 2 }}  ", True),
        ("inputs.name == 'bob'", True),
        ("items", ["x", "y", "z"]),
        ("{{ inputs.nothing }}", None),
        ("{{ inputs.missing ?? [] }}", []),
        ("{{ inputs.failed == 'true' ? ko : 42 }}", 42),
        ("{{ outputs.fetch.body }}", '{"items": [{"id": 1}, {"id": 2}]}'),  # JSON text stays text
        ("{{ outputs.fetch.body | fromJson }}", {"items": [{"id": 1}, {"id": 2}]}),
        ("count: {{ inputs.count }}", "count: 3"),  # mixed text can only be text
    ],
)
def test_evaluate_returns_native_values(ctx: dict[str, Any], expression: str, expected: Any) -> None:
    assert evaluate(expression, ctx) == expected


def test_evaluate_undefined_raises(ctx: dict[str, Any]) -> None:
    with pytest.raises(TemplateError, match="'nope' is undefined"):
        evaluate("{{ nope }}", ctx)
    with pytest.raises(TemplateError, match="'nope' is undefined"):
        evaluate("[1, nope]", ctx)


def test_render_value_recurses_into_keys_and_values(ctx: dict[str, Any]) -> None:
    value = {"{{ inputs.name }}": ["{{ taskrun.id }}", 3, {"n": "{{ inputs.count }}"}], "flag": True}
    assert render_value(value, ctx) == {"bob": ["tr-1", 3, {"n": "3"}], "flag": True}
    assert render_value(5, ctx) == 5


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        ("true", True),
        ("yes", True),
        (1, True),
        ([1], True),
        ({"a": 1}, True),
        (False, False),
        ("false", False),
        ("0", False),
        ("-0", False),
        ("", False),
        ("  ", False),
        (None, False),
        (0, False),
        ([], False),
        ("False", False),
    ],
)
def test_is_truthy(value: Any, expected: bool) -> None:
    assert is_truthy(value) is expected


# --------------------------------------------------------------------------- errors, sandbox, cache


def test_syntax_error_becomes_template_error() -> None:
    with pytest.raises(TemplateError, match=r"Unable to render '\{\{ x '"):
        render("{{ x ", {"x": 1})


def test_exceptions_from_context_callables_are_wrapped() -> None:
    def broken() -> None:
        raise RuntimeError("backend down")

    with pytest.raises(TemplateError, match="backend down") as err:
        render("{{ broken() }}", {"broken": broken})
    assert isinstance(err.value.__cause__, RuntimeError)


def test_sandbox_blocks_dunder_access() -> None:
    with pytest.raises(TemplateError, match="unsafe"):
        render("{{ ''.__class__.__mro__ }}", {})


def test_compiled_templates_are_cached() -> None:
    source = "{{ inputs.name }} cached-template-marker"
    render(source, {"inputs": {"name": "a"}})
    before = templating._compile_template.cache_info().hits
    assert render(source, {"inputs": {"name": "b"}}) == "b cached-template-marker"
    assert templating._compile_template.cache_info().hits == before + 1
