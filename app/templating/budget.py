"""The budget of one rendering: how big a value a template may build and how long it may take.

A template is written by a flow's author and rendered inside the server and the workers, so `'x' * 999999999`,
`9 ** 9999999`, a `~` doubling a string forty times or nested loops over big lists must end with an error, quickly,
instead of taking a process's memory or CPU. The checks sit where a template can grow a value or spend time: the
sandbox's operators and calls, every filter, every loop iteration, the concatenation operator and the output.
Sizes are checked *before* an operation that can multiply a size (repetition, powers, widths); everything else is
at most the sum of values already checked, and is checked after.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from app import settings as app_settings


class BudgetExceeded(Exception):
    """A template went over one of its limits; the message names the limit and its setting."""


@dataclass
class Budget:
    chars: int
    items: int
    int_digits: int
    deadline: float
    seconds: float


_active = threading.local()


@contextmanager
def rendering() -> Iterator[Budget]:
    """The budget of the outermost rendering on this thread; nested renderings (Kestra's `render()`, a template
    inside a variable) spend from the same one."""
    budget: Budget | None = getattr(_active, "budget", None)
    if budget is not None:
        yield budget
        return
    limits = app_settings.current().limits
    budget = Budget(limits.template_chars, limits.template_items, limits.template_int_digits,
                    time.monotonic() + limits.template_seconds, limits.template_seconds)
    _active.budget = budget
    try:
        yield budget
    finally:
        _active.budget = None


def _budget() -> Budget | None:
    return getattr(_active, "budget", None)


def tick() -> None:
    budget = _budget()
    if budget is not None and time.monotonic() > budget.deadline:
        raise BudgetExceeded(f"rendering took more than {budget.seconds:g} s "
                             "(limits.template_seconds, CELESTRA_LIMITS__TEMPLATE_SECONDS)")


def remaining() -> tuple[float, float, int]:
    """Seconds left, the whole budget in seconds and the longest text allowed, for work done outside this thread
    (a jq child process)."""
    budget = _budget()
    if budget is None:
        limits = app_settings.current().limits
        return limits.template_seconds, limits.template_seconds, limits.template_chars
    tick()
    return budget.deadline - time.monotonic(), budget.seconds, budget.chars


def regex_call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A `regex` module call on a pattern the flow wrote, stopped at the rendering's deadline: a pattern such as
    `(a+)+$` backtracks for longer than any budget, and the standard `re` cannot be interrupted."""
    left, seconds, _ = remaining()
    try:
        return function(*args, timeout=max(left, 0.001), **kwargs)
    except TimeoutError:
        raise BudgetExceeded(f"a regular expression ran for more than {seconds:g} s "
                             "(limits.template_seconds, CELESTRA_LIMITS__TEMPLATE_SECONDS)") from None


def text_limit() -> int | None:
    """The longest text the current rendering may build; None outside a rendering."""
    budget = _budget()
    return None if budget is None else budget.chars


def too_long(length: int) -> BudgetExceeded:
    budget = _budget()
    assert budget is not None
    return _too_long(length, budget)


def _scalar_size(item: Any) -> int:
    """About how long a scalar prints as JSON (str and int exactly enough, the rest by their text)."""
    if isinstance(item, str):
        return len(item) + 2
    if isinstance(item, bool) or item is None:
        return 5
    if isinstance(item, int):
        return (item.bit_length() * 77 >> 8) + 2  # digits: bit_length * log10(2)
    if isinstance(item, float):
        return 24
    return len(str(item)) + 2  # a date, a Decimal, bytes...; an Undefined raises here, naming the variable


def ensure_json_fits(value: Any) -> None:
    """Refuse a value whose JSON text would be over the budget, by walking it (much faster than encoding it piece
    by piece) and stopping as soon as the total passes the limit: a list holding one long string a million times
    is small in memory and enormous as text."""
    limit = text_limit()
    if limit is None:
        return
    size, stack = 0, [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            size += 2 + len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            size += 2 + len(item)
            for element in item:
                kind = type(element)
                if kind is str:  # the common cases first, and the limit checked as it is passed
                    size += len(element) + 2
                    if size > limit:
                        raise too_long(size)
                elif kind is int:
                    size += (element.bit_length() * 77 >> 8) + 2
                elif isinstance(element, Mapping | list | tuple | set | frozenset):
                    stack.append(element)
                else:
                    size += _scalar_size(element)
        else:
            size += _scalar_size(item)
        if size > limit:
            raise too_long(size)


def sized_join(parts: list[str], separator: str) -> str:
    """`separator.join(parts)` once its length is known to be within the budget."""
    limit = text_limit()
    if limit is not None:
        size = len(separator) * max(0, len(parts) - 1) + sum(len(part) for part in parts)
        if size > limit:
            raise too_long(size)
    return separator.join(parts)


def _too_long(length: int, budget: Budget) -> BudgetExceeded:
    return BudgetExceeded(f"a string of {length} characters is over the limit of {budget.chars} "
                          "(limits.template_chars, CELESTRA_LIMITS__TEMPLATE_CHARS)")


def _too_many(count: int, budget: Budget) -> BudgetExceeded:
    return BudgetExceeded(f"a list or map of {count} items is over the limit of {budget.items} "
                          "(limits.template_items, CELESTRA_LIMITS__TEMPLATE_ITEMS)")


def _too_big(digits: int, budget: Budget) -> BudgetExceeded:
    return BudgetExceeded(f"an integer of about {digits} digits is over the limit of {budget.int_digits} "
                          "(limits.template_int_digits, CELESTRA_LIMITS__TEMPLATE_INT_DIGITS)")


def checked(value: Any) -> Any:
    """`value`, once its size is known to be within the budget (its top level: nested values were checked when
    they were built)."""
    budget = _budget()
    if budget is None:
        return value
    if isinstance(value, str | bytes):
        if len(value) > budget.chars:
            raise _too_long(len(value), budget)
    elif isinstance(value, list | tuple | Mapping | set):
        if len(value) > budget.items:
            raise _too_many(len(value), budget)
    elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > budget.int_digits * 3.33:
        raise _too_big(int(value.bit_length() / 3.32), budget)
    return value


def check_width(width: Any) -> None:
    """A width or count argument (`center`, `indent`, `truncate`, ...) that would build a string over the limit."""
    budget = _budget()
    if budget is not None and isinstance(width, int) and width > budget.chars:
        raise _too_long(width, budget)


def _length(value: Any) -> int | None:
    return len(value) if isinstance(value, str | bytes | list | tuple) else None


def before_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse `*`, `**`, `%` and `+` whose result would be over the budget, before it is computed."""
    budget = _budget()
    if budget is None:
        return
    tick()
    if operator == "*":
        for seq, count in ((left, right), (right, left)):
            length = _length(seq)
            if length is not None and isinstance(count, int) and count > 0:
                limit = budget.chars if isinstance(seq, str | bytes) else budget.items
                if length * count > limit:
                    raise (_too_long if isinstance(seq, str | bytes) else _too_many)(length * count, budget)
        if isinstance(left, int) and isinstance(right, int):
            digits = (abs(left).bit_length() + abs(right).bit_length()) / 3.32
            if digits > budget.int_digits:
                raise _too_big(int(digits), budget)
    elif operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0:
        digits = right * math.log10(abs(left))
        if digits > budget.int_digits:
            raise _too_big(int(digits), budget)
    elif operator == "%" and isinstance(left, str):
        check_printf(left, right)
    elif operator == "+":
        a, b = _length(left), _length(right)
        if a is not None and b is not None:
            limit = budget.chars if isinstance(left, str | bytes) else budget.items
            if a + b > limit:
                raise (_too_long if isinstance(left, str | bytes) else _too_many)(a + b, budget)


def concat(*parts: Any) -> str:
    """Pebble's and Jinja's `~`, with its result checked: doubling a string in a few statements must not get far.
    A list or map is sized before it is turned into text."""
    tick()
    for part in parts:
        if not isinstance(part, str):
            ensure_json_fits(part)
    return checked("".join(str(part) for part in parts))


# printf-style conversions: `%[(key)][flags][width][.precision]type`; a `*` takes the width from the arguments.
_PRINTF = re.compile(r"%(?:\([^)]*\))?[-+ #0]*(\d+|\*)?(?:\.(\d+|\*))?[a-zA-Z%]")
# str.format fields with a width: `{0:>20}`, `{:_^30}`, `{x:020.5f}`.
_FORMAT_FIELD = re.compile(r"\{[^{}]*?:[^{}]*?(\d+)[^{}]*\}")


def check_printf(template: str, arguments: Any) -> None:
    """`template % arguments` (or the `format` filter): no width or precision over the string limit."""
    for match in _PRINTF.finditer(template):
        for width in match.groups():
            if width == "*":
                for argument in arguments if isinstance(arguments, tuple | list) else (arguments,):
                    check_width(argument)
            elif width:
                check_width(int(width))


def before_str_method(text: str, name: str, args: tuple[Any, ...]) -> None:
    """Methods of a string called from a template (`'x'.ljust(n)`, `.replace(a, b)`, `'{:>9}'.format()`): refused
    when their result would be over the string limit, before they build it."""
    budget = _budget()
    if budget is None:
        return
    if name in ("format", "format_map"):
        for match in _FORMAT_FIELD.finditer(text):
            check_width(int(match.group(1)))
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        check_replace(text, args[0], args[1], args[2] if len(args) > 2 and isinstance(args[2], int) else -1)
    elif name == "expandtabs" and args and isinstance(args[0], int):
        check_width(text.count("\t") * args[0] + len(text))
    elif name == "join" and args and isinstance(args[0], list | tuple):
        sized_join([str(part) for part in args[0]], text)
    elif name in ("ljust", "rjust", "center", "zfill") and args:
        check_width(args[0])


def check_replace(text: str, old: str, new: str, limit: int = -1) -> None:
    """A replacement's result length, known before it is built (`limit`: str.replace's count, -1 for all)."""
    if len(new) > len(old):
        count = text.count(old) if old else len(text) + 1
        if limit >= 0:
            count = min(count, limit)
        check_width(len(text) + count * (len(new) - len(old)))


def check_indent(text: str, width: Any) -> None:
    """Indenting every line by `width` (spaces, or a string)."""
    pad = width if isinstance(width, int) else len(str(width))
    check_width(len(text) + pad * (text.count("\n") + 1))


def iterate(iterable: Any) -> Iterator[Any]:
    """A loop's iterable, paying a tick per iteration so nested loops over big lists end at the deadline."""
    for count, item in enumerate(iterable):
        if count % 64 == 0:
            tick()
        yield item
