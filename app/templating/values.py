"""How template values print and serialize: Pebble's text for maps, lists, booleans and nulls, and Kestra's JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, NamedTuple

from jinja2 import Undefined

from app.templating import budget


class MapEntry(NamedTuple):
    """What a Pebble ``{% for entry in map %}`` yields: ``entry.key`` / ``entry.value``, or unpack it."""

    key: Any
    value: Any


# --------------------------------------------------------------------------- output / JSON


def _json_default(value: Any) -> Any:
    if isinstance(value, Undefined):
        str(value)  # strict undefined raises here, which is what we want: no silent "null"
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, Mapping):
        return dict(value)
    return str(value)


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_json_default)


def to_json(value: Any) -> str:
    """Compact JSON exactly like Kestra prints maps/lists (no spaces, unicode kept as-is), within the budget of the
    rendering that asks for it."""
    budget.ensure_json_fits(value)
    return _ENCODER.encode(value)


def stringify(value: Any) -> str:
    """Turn any value into the text Pebble would print; used as the Jinja ``finalize`` hook."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, MapEntry):
        return f"{stringify(value.key)}={stringify(value.value)}"
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        return to_json(value)
    return str(value)  # Undefined raises in __str__, so strict mode also holds for output


def maybe_json(value: Any) -> Any:
    """Some filters accept a JSON document passed as a string (e.g. a task output)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
