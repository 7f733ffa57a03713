"""Given input values: the error users see, and the parsing helpers every input type shares."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

StoreFile = Callable[[str, str, bytes], str]


class InputError(ValueError):
    """Bad or missing input values: ``input_id`` is the first bad input, ``errors`` has one per bad input."""

    def __init__(self, input_id: str, message: str, errors: Sequence[InputError] = ()) -> None:
        super().__init__(message)
        self.input_id = input_id
        self.errors: list[InputError] = list(errors) or [self]

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions are pickled across processes (Celery, multiprocessing); the default rebuilds from
        # self.args only, which would call __init__ with the message as input_id.
        nested = tuple(self.errors) if self.errors != [self] else ()
        return (type(self), (self.input_id, str(self), nested))


class InvalidValue(Exception):
    """Raised by coercers with a bare reason; resolve_inputs prefixes it with the input id."""


def describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def scalar_str(value: Any, what: str = "a string") -> str:
    # Numbers are accepted for text-like inputs because YAML turns `defaults: 42` into an int.
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise InvalidValue(f"expected {what}, got {describe(value)}")


def json_list(value: Any, what: str) -> list[Any]:
    # CLI values such as "a,b" are deliberately not split: commas are legal inside items.
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise InvalidValue(f"expected {what} as a JSON array, got {describe(value)}") from None
    if isinstance(value, list | tuple):
        return list(value)
    raise InvalidValue(f"expected {what}, got {describe(value)}")


def utc(dt: datetime) -> datetime:
    # Kestra DATETIME is an Instant: a value without offset is taken as UTC rather than server-local time.
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


_DURATION_RE = re.compile(
    r"P(?:(?P<d>\d+)D)?(?:T(?=\d)(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:[.,]\d{1,9})?)S)?)?",
    re.IGNORECASE,
)


def parse_duration(text: str) -> timedelta:
    match = _DURATION_RE.fullmatch(text.strip())
    if not match or not any(match.groupdict().values()):
        raise InvalidValue(f"expected an ISO-8601 duration such as 'PT5M', got {describe(text)}")
    g = {k: v or "0" for k, v in match.groupdict().items()}
    seconds = float(g["s"].replace(",", "."))
    return timedelta(days=int(g["d"]), hours=int(g["h"]), minutes=int(g["m"]), seconds=seconds)


def format_duration(td: timedelta) -> str:
    """Canonical form as Java's Duration.toString() prints it (P1D -> PT24H), so equal durations are equal."""
    if td < timedelta(0):
        raise InvalidValue(f"duration must not be negative, got {td}")
    micros = td // timedelta(microseconds=1)
    hours, rest = divmod(micros, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    secs, frac = divmod(rest, 1_000_000)
    out = "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    if frac:
        out += f"{secs}.{frac:06d}".rstrip("0") + "S"
    elif secs or out == "PT":
        out += f"{secs}S"
    return out
