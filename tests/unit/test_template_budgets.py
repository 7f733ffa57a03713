"""Templates a flow's author writes cannot take the process's memory or CPU: each bomb ends within its budget with an
error naming the limit and the setting that raises it, and ordinary templates are untouched."""

from __future__ import annotations

import contextlib
import gc
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app import settings as app_settings
from app import templating
from app.model.states import State
from app.settings import Limits, Settings


@pytest.fixture
def limits(tmp_path: Path) -> Iterator[Limits]:
    previous = app_settings.configured()
    settings = Settings(home=tmp_path, limits=Limits(template_seconds=1.5))
    app_settings.configure(settings)
    yield settings.limits
    app_settings.configure(previous)


def refused(template: str, within: float = 1.0) -> str:
    started = time.monotonic()
    with pytest.raises(templating.TemplateError) as raised:
        templating.render(template, {"items": list(range(100_000))})
    elapsed = time.monotonic() - started
    assert elapsed < within, f"{template!r} took {elapsed:.2f}s"
    return str(raised.value)


SIZE_BOMBS = [
    "{{ 'x' * 999999999 }}",
    "{{ ['x'] * 999999999 }}",
    "{{ 'x' * 9000000 + 'y' * 9000000 }}",
    "{{ 'a' | center(999999999) }}",
    "{{ 'a' | indent(999999999) }}",
    "{{ '%999999999d' | format(1) }}",
    "{{ (['x' * 9000000] * 1000000) | join(',') }}",
    "{{ ['x' * 9000000] * 1000000 }}",
    "{% set s = 'xxxxxxxxxxxxxxxx' %}" + "{% set s = s ~ s %}" * 30 + "{{ s | length }}",
    "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",
    "{{ ('%40000000s' % 'x') | length }}",
    "{{ ((['x' * 1000000] * 300) ~ '') | length }}",
    "{{ ('a' * 60) | replace('a', 'x' * 5000000) }}",
    "{{ ('a' * 600) | replace({'a': 'x' * 1000000}, regexp=true) }}",
    "{{ ('a\n' * 60) | indent(5000000) }}",
    "{{ ('a\n' * 60) | nindent(5000000) }}",
    "{{ 'x'.ljust(100000000) }}",
    "{{ '{:>100000000}'.format('x') }}",
    "{{ 'abbc'.replace('b', 'x' * 9000000) }}",
    "{{ [1] | batch(30000000, 'x') | length }}",
    "{{ ('a\n' * 2000) | nindent(2000, 'p' * 20) | length }}",
]


@pytest.mark.parametrize("template", SIZE_BOMBS)
def test_a_value_over_the_size_limit_is_refused_before_it_is_built(limits: Limits, template: str) -> None:
    message = refused(template)
    assert "over the limit of" in message and "CELESTRA_LIMITS__TEMPLATE_" in message, message


@pytest.mark.parametrize("template", ["{{ 9 ** 9999999 }}", "{{ (10 ** 9000) * (10 ** 9000) }}"])
def test_a_huge_integer_is_refused_before_it_is_computed(limits: Limits, template: str) -> None:
    assert "digits is over the limit of 10000" in refused(template)


@pytest.mark.parametrize("template", [
    "{% for i in items %}{% for j in items %}{% endfor %}{% endfor %}",
    "{{ {} | jq('repeat(1)') }}",
    "{{ {} | jq('def f: f; f') }}",
    "{{ {} | jq('[range(1e10)]') }}",
])
def test_a_rendering_that_runs_too_long_ends_at_its_deadline(limits: Limits, template: str) -> None:
    message = refused(template, within=limits.template_seconds + 1.5)
    assert "more than 1.5 s" in message and "CELESTRA_LIMITS__TEMPLATE_SECONDS" in message, message


def test_jq_still_answers_after_a_program_was_stopped(limits: Limits) -> None:
    refused("{{ {} | jq('repeat(1)') }}", within=limits.template_seconds + 1.5)
    assert templating.render("{{ {'a': [1, 2]} | jq('.a | add') }}", {}) == "[3]"


def test_lists_and_maps_cannot_be_changed_in_place(limits: Limits) -> None:
    template = "{% set l = [1] %}{% for i in range(25) %}{% set _ = l.extend(l) %}{% endfor %}{{ l | length }}"
    assert "access to attribute 'extend' of 'list' object is unsafe" in refused(template)


def test_values_that_are_not_json_types_are_sized_by_their_text(limits: Limits) -> None:
    context = {"days": [date(2024, 1, 1), date(2024, 1, 2)], "amount": Decimal("1.50")}
    assert templating.render("{{ days }} {{ days[0] | json }} {{ [amount] }}", context) == \
        '["2024-01-01","2024-01-02"] "2024-01-01" [1.5]'
    assert "'nope' is undefined" in refused("{{ [nope] }}", within=0.5)


def test_a_jq_child_left_by_a_killed_process_stops_by_itself(tmp_path: Path) -> None:
    """A worker SIGKILLed while its jq program spins: the child's CPU limit ends it a little after the budget."""
    script = (
        "from app import settings, templating\n"
        f"settings.configure(settings.Settings(home={str(tmp_path)!r}, limits=settings.Limits(template_seconds=1)))\n"
        "templating.render(\"{{ {} | jq('repeat(1)') }}\", {})\n")
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        assert wait_for(lambda: _jq_children(parent.pid), 10), "no jq child started"
        children = _jq_children(parent.pid)
        parent.kill()
        parent.wait()
        assert wait_for(lambda: not any(Path(f"/proc/{pid}").exists() and _running(pid) for pid in children), 8), \
            "the jq child outlived its parent"
    finally:
        parent.kill()


def _jq_children(parent: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError):
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
            if fields.get("PPid", "").strip() == str(parent):
                found.append(int(status.parent.name))
    return found


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def wait_for(condition: Callable[[], Any], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return bool(condition())


def test_lipsum_is_not_a_pebble_function(limits: Limits) -> None:
    assert "'lipsum' is undefined" in refused("{{ lipsum(n=200000) }}")


def test_the_limits_are_settings(limits: Limits) -> None:
    limits.template_chars = 10
    assert "a string of 11 characters is over the limit of 10" in refused("{{ 'x' * 11 }}")
    assert templating.render("{{ 'x' * 10 }}", {}) == "x" * 10


def test_ordinary_templates_are_untouched(limits: Limits) -> None:
    context = {"items": ["a", "b"], "n": 3}
    assert templating.render("{% for i in items %}{{ loop.index }}{{ i }}{% endfor %}", context) == "0a1b"
    assert templating.render("{{ 'ab' ~ n ~ 'c' | upper }}", context) == "AB3C"
    assert templating.render("{{ 2 ** 64 }} {{ 'x' * n }} {{ [1] * 2 }} {{ [1] + [2] }}", context) == \
        "18446744073709551616 xxx [1,1] [1,2]"
    assert templating.evaluate("{{ items | join('-') }}", context) == "a-b"
    assert templating.render("{{ 'a b'.split(' ', 20000000) }} {{ 'abc'.startswith('a', 20000000) }}", {}) == \
        '["a","b"] false'
    assert templating.render("{{ ('a' * 6000000).replace('a', 'bb', 1) | length }}", {}) == "6000001"
    assert templating.render("{{ 7 % 3 }} {{ '%s-%d' % ('a', 3) }} {{ 'ab' | nindent(2) }}", {}) == "1 a-3 \n  ab"


def test_a_thread_that_ends_takes_its_jq_child_with_it(limits: Limits) -> None:
    def children() -> list[int]:
        return _jq_children(os.getpid())

    before = set(children())
    threads = [threading.Thread(target=templating.render, args=("{{ {'a': 1} | jq('.a') }}", {})) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    gc.collect()
    assert wait_for(lambda: not (set(children()) - before), 5), "jq children outlived their threads"


def test_a_task_whose_template_is_a_bomb_fails_saying_why(client: Any) -> None:
    started = time.monotonic()
    ex = client.run("""
id: template_bomb
namespace: unit.budgets
tasks:
  - id: bomb
    type: io.kestra.plugin.core.debug.Return
    format: "{{ 'x' * 999999999 }}"
""", timeout=30)
    assert ex.state == State.FAILED
    assert "over the limit of 10000000" in (ex.task_runs[0].error or "")
    assert time.monotonic() - started < 10
