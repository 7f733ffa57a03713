"""Pebble/Kestra filters, tests and functions for the Jinja2 sandbox built in :mod:`app.templating`.

Everything here follows Kestra's behaviour rather than Jinja's where the two disagree (``default`` treats
empty values like missing ones, ``capitalize`` keeps the rest of the string, ``range`` is inclusive...),
because flows are written and tested against Kestra.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Mapping, Sized
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import regex
import yaml
from jinja2 import Undefined

from app.templating import budget, jq_process
from app.templating.dates import date_add, format_date, now, timestamp
from app.templating.values import MapEntry, maybe_json, stringify, to_json


def default(value: Any, default_value: Any = "", *_: Any) -> Any:
    """Pebble's default: used for undefined, null, blank strings and empty collections alike."""
    return default_value if isinstance(value, Undefined) or is_empty(value) else value


def is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, Sized):
        return len(value) == 0
    return False


def first(value: Any) -> Any:
    if isinstance(value, str):
        return value[:1] or None
    if isinstance(value, Mapping):
        value = [MapEntry(k, v) for k, v in value.items()]
    return next(iter(value), None)


def last(value: Any) -> Any:
    if isinstance(value, str):
        return value[-1:] or None
    items = list(value.values() if isinstance(value, Mapping) else value)
    return items[-1] if items else None


def keys(value: Any) -> list[Any] | None:
    value = maybe_json(value)
    if value is None:
        return None
    if isinstance(value, Mapping):
        return list(value.keys())
    return list(range(len(value)))  # Kestra: keys of a list are its indexes


def values(value: Any) -> list[Any] | None:
    value = maybe_json(value)
    if value is None:
        return None
    return list(value.values()) if isinstance(value, Mapping) else list(value)


def length(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, Sized):
        return len(value)
    return sum(1 for _ in value)


def join(value: Any, separator: str = "") -> str | None:
    return None if value is None else budget.sized_join([stringify(item) for item in value], separator)


def split(value: Any, delimiter: str, limit: int | None = None) -> list[str] | None:
    """Java ``String.split``: regex delimiter, trailing empty strings dropped unless a limit is given."""
    if value is None:
        return None
    text = stringify(value)
    if limit is not None and limit > 0:
        return budget.regex_call(regex.split, delimiter, text, maxsplit=limit - 1)
    parts = budget.regex_call(regex.split, delimiter, text)
    if limit is None or limit == 0:
        if len(parts) == 1:
            return parts  # no match: Java returns the input itself, even when empty
        while parts and parts[-1] == "":
            parts.pop()
    return parts


def _str_filter(func: Callable[[str], Any]) -> Callable[[Any], Any]:
    def apply(value: Any) -> Any:
        return None if value is None else func(stringify(value))

    return apply


def _title(text: str) -> str:
    out, upper_next = [], True
    for char in text:
        out.append(char.upper() if upper_next and not char.isspace() else char)
        upper_next = char.isspace()
    return "".join(out)


def number(value: Any, type: str | None = None) -> Any:
    if value is None or not isinstance(value, str):
        return value
    text = value.strip()
    kind = (type or "").upper()
    if kind in ("INT", "LONG", "BIGINTEGER"):
        return int(text)
    if kind in ("FLOAT", "DOUBLE", "BIGDECIMAL"):
        return float(text)
    try:
        return int(text, 0) if text.lower().startswith(("0x", "-0x")) else int(text)
    except ValueError:
        return float(text)


def _java_replacement(template: str) -> Callable[[Any], str]:
    """Java regex replacement strings use ``$1`` / ``${name}`` and ``\\`` escapes."""

    def expand(match: Any) -> str:
        out, i = [], 0
        while i < len(template):
            char = template[i]
            if char == "\\" and i + 1 < len(template):
                out.append(template[i + 1])
                i += 2
                continue
            group = re.match(r"\$(?:\{(\w+)\}|(\d+))", template[i:])
            if group:
                ref = group.group(1) or int(group.group(2))
                out.append(match.group(ref) or "")
                i += group.end()
                continue
            out.append(char)
            i += 1
        return "".join(out)

    return expand


def replace(value: Any, pairs: Any, new: Any = None, regexp: bool = False) -> Any:
    """Kestra's ``replace({'old': 'new'}, regexp=false)``; Jinja's ``replace('old', 'new')`` works too."""
    if value is None:
        return None
    mapping = dict(pairs) if isinstance(pairs, Mapping) else {pairs: "" if new is None else new}
    if isinstance(value, Mapping):
        return {k: replace(v, mapping, regexp=regexp) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [replace(v, mapping, regexp=regexp) for v in value]
    text = stringify(value)
    for old, repl in mapping.items():
        if regexp:
            matches = len(budget.regex_call(regex.findall, str(old), text))
            budget.check_width(len(text) + matches * len(stringify(repl)))  # before it is built, not after
            text = budget.regex_call(regex.sub, str(old), _java_replacement(stringify(repl)), text)
        else:
            budget.check_replace(text, str(old), stringify(repl))
            text = text.replace(str(old), stringify(repl))
    return text


def _substring(before: bool, last: bool) -> Callable[[Any, str], str | None]:
    """Apache commons-lang substringBefore/After(Last) semantics, which Kestra uses."""

    def apply(value: Any, separator: str) -> str | None:
        if value is None:
            return None
        text = stringify(value)
        index = text.rfind(separator) if last else text.find(separator)
        if index < 0 or (last and not before and separator == ""):
            return text if before else ""
        return text[:index] if before else text[index + len(separator) :]

    return apply


def slugify(value: Any) -> str | None:
    if value is None:
        return None
    text = unicodedata.normalize("NFD", re.sub(r"\s", "-", stringify(value)))
    text = re.sub(r"[^\w-]", "", text, flags=re.ASCII).replace("_", "-")
    text = re.sub(r"-{2,}", "-", text).removeprefix("-").removesuffix("-")
    return text.lower()


_ESCAPES = {"single": ("'", "\\'"), "double": ('"', '\\"'), "shell": ("'", "'\\''")}


def escape_char(value: Any, type: str) -> Any:
    if value is None:
        return None
    old, new = _ESCAPES[type.lower()]
    if isinstance(value, Mapping):
        return {k: escape_char(v, type) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [escape_char(v, type) for v in value]
    return stringify(value).replace(old, new)


# jq can read the process environment (`env`, `$ENV`), load modules from disk (`import`, `include`) and write to
# the worker's stderr (`debug`, `stderr`). Templates see only their variables: the expression runs inside a scope
# where those names are empty or inert, and a module directive, no longer at the program's start, is a syntax error.
_JQ_SANDBOX = "def env: {}; def debug: .; def debug(msg): .; def stderr: .; {} as $ENV | (\n"


def jq_filter(value: Any, expression: str) -> list[Any] | None:
    """Run a jq expression; like Kestra this always returns the list of all results."""
    if value is None:
        return None
    data = maybe_json(value) if isinstance(value, str) else json.loads(to_json(value))
    return jq_process.run(f"{_JQ_SANDBOX}{expression}\n)", data)


def _digest(algorithm: str) -> Callable[[Any], str | None]:
    def apply(value: Any) -> str | None:
        if value is None:
            return None
        return hashlib.new(algorithm, stringify(value).encode("utf-8")).hexdigest()

    return apply


def urlencode(value: Any) -> str | None:
    # java.net.URLEncoder: form encoding, keeps "*" and escapes "~"
    return None if value is None else quote_plus(stringify(value), safe="*").replace("~", "%7E")


def chunk(value: Iterable[Any], size: int) -> list[list[Any]]:
    items = list(value)
    return [items[i : i + size] for i in range(0, len(items), size)]


def distinct(value: Iterable[Any]) -> list[Any]:
    """First occurrences in order, by equality (items are often dicts: compared by their JSON text, in linear
    time, so a long list cannot make this quadratic)."""
    out: list[Any] = []
    seen: set[str] = set()
    for item in value:
        try:
            key = json.dumps(item, sort_keys=True, default=str)
        except TypeError:  # a map mixing key types cannot be sorted: its own order then
            key = json.dumps(item, default=str)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def merge(value: Any, other: Any) -> Any:
    """Pebble's `merge`: the left side decides the result's type; a map takes a map's entries or a list's items
    (each its own key), a list takes a list's items or a map's entries; anything else is an error, as in Kestra."""
    if value is None or other is None:
        if value is None and other is None:
            raise ValueError("merge: the two values to merge are null")
        return other if value is None else value
    if isinstance(value, Mapping):
        if isinstance(other, Mapping):
            return {**value, **other}
        if isinstance(other, list | tuple):
            return {**value, **{item: item for item in other}}
        raise ValueError(f"merge: only a map or a list can be merged into a map, not {type(other).__name__}")
    if isinstance(value, list | tuple):
        if isinstance(other, Mapping):
            return [*value, *(MapEntry(key, item) for key, item in other.items())]
        if isinstance(other, list | tuple):
            return [*value, *other]
        raise ValueError(f"merge: only a map or a list can be merged into a list, not {type(other).__name__}")
    raise ValueError(f"merge: the value filtered is a {type(value).__name__}, not a map or a list")


def pebble_slice(value: Any, fromIndex: int = 0, toIndex: int | None = None) -> Any:
    return None if value is None else value[fromIndex:toIndex]


def abbreviate(value: Any, length: int) -> str | None:
    if value is None:
        return None
    text = stringify(value)
    return text if len(text) <= length else text[: max(length - 3, 0)] + "..."


def nindent(value: Any, amount: int, prefix: str = " ") -> str:
    pad = prefix * amount
    return "\n" + "\n".join(pad + line if line else line for line in stringify(value).split("\n"))


def pebble_range(start: int, end: int | None = None, increment: int = 1) -> list[int]:
    """Pebble's range is inclusive of ``end``; a lone argument keeps Python's ``range(n)``."""
    step_past_end = 1 if increment > 0 else -1
    bounds = range(start) if end is None else range(start, end + step_past_end, increment)
    if len(bounds) > 1_000_000:  # same guard as Kestra: never materialise huge lists
        raise ValueError(f"range() cannot produce more than 1000000 elements ({len(bounds)} requested)")
    return list(bounds)


def pebble_iter(value: Any) -> Any:
    """``{% for %}`` over a map yields entries in Pebble, keys in Jinja; keep Pebble's behaviour. Each iteration
    spends from the rendering's time budget (nested loops over big lists end at its deadline)."""
    if isinstance(value, Mapping):
        return budget.iterate([MapEntry(k, v) for k, v in value.items()])
    if isinstance(value, Undefined):
        return value  # iterating it raises, naming the variable
    return budget.iterate(value)


def from_json(value: Any) -> Any:
    return None if value is None else json.loads(value)


def is_json(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


def is_present(value: Any) -> bool:
    """The ``??`` test: neither undefined nor null."""
    return not isinstance(value, Undefined) and value is not None


def _starts_with(value: Any, prefix: str) -> bool:
    return value is not None and stringify(value).startswith(prefix)


def _ends_with(value: Any, suffix: str) -> bool:
    return value is not None and stringify(value).endswith(suffix)


FILTERS: dict[str, Callable[..., Any]] = {
    "json": to_json,
    "toJson": to_json,
    "jsonEncode": to_json,
    "fromJson": from_json,
    "jq": jq_filter,
    "first": first,
    "last": last,
    "keys": keys,
    "values": values,
    "length": length,
    "join": join,
    "split": split,
    "default": default,
    "number": number,
    "replace": replace,
    "upper": _str_filter(str.upper),
    "lower": _str_filter(str.lower),
    "trim": _str_filter(str.strip),
    "capitalize": _str_filter(lambda s: s[:1].upper() + s[1:]),
    "title": _str_filter(_title),
    "abs": lambda v: None if v is None else abs(number(v)),
    "substringBefore": _substring(True, False),
    "substringAfter": _substring(False, False),
    "substringBeforeLast": _substring(True, True),
    "substringAfterLast": _substring(False, True),
    "startsWith": _starts_with,
    "endsWith": _ends_with,
    "slugify": slugify,
    "escapeChar": escape_char,
    "date": format_date,
    "dateAdd": date_add,
    "timestamp": timestamp(1),
    "timestampMilli": timestamp(1_000),
    "timestampMicro": timestamp(1_000_000),
    "timestampNano": timestamp(1_000_000_000),
    "base64encode": _str_filter(lambda s: base64.b64encode(s.encode("utf-8")).decode("ascii")),
    "base64decode": _str_filter(lambda s: base64.b64decode(s).decode("utf-8")),
    "urlencode": urlencode,
    "urldecode": _str_filter(unquote_plus),
    "md5": _digest("md5"),
    "sha1": _digest("sha1"),
    "sha256": _digest("sha256"),
    "sha512": _digest("sha512"),
    "chunk": chunk,
    "distinct": distinct,
    "merge": merge,
    "slice": pebble_slice,
    "abbreviate": abbreviate,
    "rsort": lambda v: sorted(v, reverse=True),
    "string": stringify,
    "nindent": nindent,
    "yaml": lambda v: to_yaml(v),
}


def to_yaml(value: Any) -> str:
    # libyaml's emitter: the pure-Python one takes minutes over the million items a budget allows, and cannot be
    # interrupted at the rendering's deadline.
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(json.loads(to_json(value)), Dumper=dumper, sort_keys=False, allow_unicode=True)

TESTS: dict[str, Callable[..., bool]] = {
    "empty": is_empty,
    "null": lambda v: v is None,
    "map": lambda v: isinstance(v, Mapping),
    "json": is_json,
    "startsWith": _starts_with,
    "endsWith": _ends_with,
    "_pb_present": is_present,
}

GLOBALS: dict[str, Any] = {
    "now": now,
    "json": from_json,
    "fromJson": from_json,
    "jsonDecode": from_json,
    "yaml": lambda v: yaml.safe_load(v),
    "range": pebble_range,
    "_pb_range": pebble_range,
    "_pb_iter": pebble_iter,
    "max": lambda *a: max(a[0] if len(a) == 1 else a),
    "min": lambda *a: min(a[0] if len(a) == 1 else a),
    "uuid": lambda: str(uuid.uuid4()),
}
