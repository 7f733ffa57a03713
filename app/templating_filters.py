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
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import quote_plus, unquote_plus
from zoneinfo import ZoneInfo

import jq
import yaml
from dateutil.parser import isoparse
from dateutil.relativedelta import relativedelta
from jinja2 import Undefined


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


def to_json(value: Any) -> str:
    """Compact JSON exactly like Kestra prints maps/lists (no spaces, unicode kept as-is)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_json_default)


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


def _maybe_json(value: Any) -> Any:
    """Some filters accept a JSON document passed as a string (e.g. a task output)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


# --------------------------------------------------------------------------- dates

_NAMED_PATTERNS = {
    "iso": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX",
    "iso_milli": "yyyy-MM-dd'T'HH:mm:ss.SSSXXX",
    "iso_sec": "yyyy-MM-dd'T'HH:mm:ssXXX",
    "sql": "yyyy-MM-dd HH:mm:ss.SSSSSS",
    "sql_milli": "yyyy-MM-dd HH:mm:ss.SSS",
    "sql_seq": "yyyy-MM-dd HH:mm:ss",
    "sql_sec": "yyyy-MM-dd HH:mm:ss",
    "iso_date": "yyyy-MM-ddXXX",
    "iso_local_date": "yyyy-MM-dd",
    "iso_local_time": "HH:mm:ss",
    "iso_local_date_time": "yyyy-MM-dd'T'HH:mm:ss",
    "rfc_1123_date_time": "EEE, d MMM yyyy HH:mm:ss 'GMT'",
}

# Java's ISO_* formatters print the shortest exact fraction, which is what isoformat() does too.
_ISO_FORMATTERS: dict[str, Callable[[datetime], str]] = {
    "iso_date_time": lambda d: _z(d.isoformat()),
    "iso_offset_date_time": lambda d: _z(d.isoformat()),
    "iso_zoned_date_time": lambda d: _z(d.isoformat()),
    "iso_instant": lambda d: d.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z",
    "iso_time": lambda d: _z(d.timetz().isoformat()),
}

_PATTERN_TOKEN = re.compile(r"'(?:[^']|'')*'|([A-Za-z])\1*|.", re.DOTALL)
_STRPTIME = {
    "y": "%Y",
    "u": "%Y",
    "M": "%m",
    "d": "%d",
    "H": "%H",
    "h": "%I",
    "m": "%M",
    "s": "%S",
    "S": "%f",
    "a": "%p",
    "X": "%z",
    "x": "%z",
    "Z": "%z",
    "z": "%Z",
    "D": "%j",
}


def _z(text: str) -> str:
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _offset(value: datetime, letter: str, count: int) -> str:
    seconds = int((value.utcoffset() or timedelta()).total_seconds())
    if seconds == 0 and (letter == "X" or (letter == "Z" and count == 5)):
        return "Z"
    sign = "-" if seconds < 0 else "+"
    hours, minutes = divmod(abs(seconds) // 60, 60)
    if letter == "Z" and count == 4:
        return "GMT" if seconds == 0 else f"GMT{sign}{hours:02d}:{minutes:02d}"
    if letter in "Xx" and count == 1:
        return f"{sign}{hours:02d}" + (f"{minutes:02d}" if minutes else "")
    colon = ":" if (letter in "Xx" and count in (3, 5)) or (letter == "Z" and count == 5) else ""
    return f"{sign}{hours:02d}{colon}{minutes:02d}"


def _field(value: datetime, letter: str, count: int) -> str:
    """One run of a Java DateTimeFormatter pattern letter (e.g. ``yyyy`` is letter y, count 4)."""
    numeric = {
        "d": value.day,
        "H": value.hour,
        "m": value.minute,
        "s": value.second,
        "D": value.timetuple().tm_yday,
        "h": value.hour % 12 or 12,
        "K": value.hour % 12,
        "k": value.hour or 24,
        "e": value.isoweekday(),
        "w": value.isocalendar()[1],
        "Q": (value.month - 1) // 3 + 1,
    }
    if letter in numeric:
        return str(numeric[letter]).zfill(count)
    if letter in "yuY":
        year = value.isocalendar()[0] if letter == "Y" else value.year
        return f"{year % 100:02d}" if count == 2 else str(year).zfill(count)
    if letter in "ML":
        return str(value.month).zfill(count) if count <= 2 else value.strftime("%b" if count == 3 else "%B")
    if letter == "S":  # fraction of second, truncated to `count` digits like Java
        return f"{value.microsecond:06d}000".ljust(count, "0")[:count]
    if letter == "n":
        return str(value.microsecond * 1000)
    if letter == "a":
        return "AM" if value.hour < 12 else "PM"
    if letter == "E":
        return value.strftime("%a" if count <= 3 else "%A")
    if letter == "G":
        return "AD"
    if letter in "zV":
        key = getattr(value.tzinfo, "key", None)
        return key if (letter == "V" and key) else (value.tzname() or "")
    if letter in "XxZ":
        return _offset(value, letter, count)
    raise ValueError(f"Unsupported letter '{letter}' in date pattern")


def format_java(value: datetime, pattern: str) -> str:
    """Format ``value`` with a Java ``DateTimeFormatter`` pattern such as ``yyyy-MM-dd'T'HH:mm:ss``."""
    out: list[str] = []
    for match in _PATTERN_TOKEN.finditer(pattern):
        token = match.group(0)
        if token.startswith("'"):
            out.append("'" if token == "''" else token[1:-1].replace("''", "'"))
        elif match.group(1):
            out.append(_field(value, token[0], len(token)))
        elif token not in "[]":  # optional sections: we always print them
            out.append(token)
    return "".join(out)


def _java_to_strptime(pattern: str) -> str:
    out: list[str] = []
    for match in _PATTERN_TOKEN.finditer(pattern):
        token = match.group(0)
        if token.startswith("'"):
            out.append("'" if token == "''" else token[1:-1].replace("''", "'").replace("%", "%%"))
        elif match.group(1):
            letter, count = token[0], len(token)
            if letter == "y" and count == 2:
                out.append("%y")
            elif letter == "M" and count >= 3:
                out.append("%b" if count == 3 else "%B")
            elif letter == "E":
                out.append("%a" if count <= 3 else "%A")
            elif letter in _STRPTIME:
                out.append(_STRPTIME[letter])
            else:
                raise ValueError(f"Unsupported letter '{letter}' in existingFormat")
        else:
            out.append(token.replace("%", "%%"))
    return "".join(out)


def _zone(name: str | None) -> tzinfo:
    # Kestra uses the JVM default zone; Celestra workers run in UTC, so that is our default.
    if not name:
        return UTC
    match = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", name)
    if match:
        delta = timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))
        return timezone(-delta if match.group(1) == "-" else delta)
    return ZoneInfo(name)


def to_datetime(value: Any, zone: tzinfo, existing_format: str | None = None) -> datetime:
    """Accept what Kestra accepts as a date: datetime/date objects, epoch seconds, ISO or custom strings."""
    if isinstance(value, datetime):
        result = value
    elif isinstance(value, date):
        result = datetime.combine(value, time(12))  # Kestra pins bare dates at noon
    elif isinstance(value, int | float) and not isinstance(value, bool):
        result = datetime.fromtimestamp(value, zone)
    elif isinstance(value, str):
        text = value.strip()
        named = existing_format in _NAMED_PATTERNS or existing_format in _ISO_FORMATTERS
        if existing_format and not named:
            result = datetime.strptime(text, _java_to_strptime(existing_format))
        else:
            try:
                result = datetime.fromisoformat(text)
            except ValueError:
                result = isoparse(text)
    else:
        str(value)  # make undefined values fail with their own message
        raise TypeError(f"Cannot convert {type(value).__name__} to a date")
    return result if result.tzinfo else result.replace(tzinfo=zone)


def format_date(
    value: Any,
    format: str | None = None,
    timeZone: str | None = None,
    existingFormat: str | None = None,
    locale: str | None = None,
) -> str | None:
    if value is None:
        return None
    zone = _zone(timeZone)
    moment = to_datetime(value, zone, existingFormat).astimezone(zone)
    name = format or "iso"
    if name in _ISO_FORMATTERS:
        return _ISO_FORMATTERS[name](moment)
    if name == "rfc_1123_date_time":
        moment = moment.astimezone(UTC)
    return format_java(moment, _NAMED_PATTERNS.get(name, name))


_TIME_UNITS = {
    "NANOS": 1e-9,
    "MICROS": 1e-6,
    "MILLIS": 1e-3,
    "SECONDS": 1,
    "MINUTES": 60,
    "HOURS": 3600,
    "HALF_DAYS": 43200,
}
_DATE_UNITS = {
    "DAYS": ("days", 1),
    "WEEKS": ("weeks", 1),
    "MONTHS": ("months", 1),
    "YEARS": ("years", 1),
    "DECADES": ("years", 10),
    "CENTURIES": ("years", 100),
    "MILLENNIA": ("years", 1000),
}


def date_add(
    value: Any,
    amount: int,
    unit: str,
    format: str | None = None,
    timeZone: str | None = None,
    existingFormat: str | None = None,
    locale: str | None = None,
) -> str | None:
    if value is None:
        return None
    moment = to_datetime(value, _zone(timeZone), existingFormat)
    unit = unit.upper()
    if unit in _TIME_UNITS:  # Java adds time units on the instant line (DST-safe): do it in UTC
        shifted = moment.astimezone(UTC) + timedelta(seconds=amount * _TIME_UNITS[unit])
        moment = shifted.astimezone(moment.tzinfo)
    elif unit in _DATE_UNITS:  # ...and date units on the local calendar
        field, factor = _DATE_UNITS[unit]
        delta: dict[str, Any] = {field: amount * factor}
        moment = moment + relativedelta(**delta)
    else:
        raise ValueError(f"Unknown dateAdd unit '{unit}'")
    return format_date(moment, format, timeZone)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _timestamp(scale: int) -> Callable[..., int | None]:
    def convert(value: Any, timeZone: str | None = None, existingFormat: str | None = None) -> int | None:
        if value is None:
            return None
        # integer arithmetic on the delta keeps nanosecond/microsecond results exact (no float rounding)
        delta = to_datetime(value, _zone(timeZone), existingFormat) - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * scale + delta.microseconds * scale // 1_000_000

    return convert


def now(format: str | None = None, timeZone: str | None = None) -> str | None:
    return format_date(datetime.now(UTC), format, timeZone)


# --------------------------------------------------------------------------- collections and strings


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
    value = _maybe_json(value)
    if value is None:
        return None
    if isinstance(value, Mapping):
        return list(value.keys())
    return list(range(len(value)))  # Kestra: keys of a list are its indexes


def values(value: Any) -> list[Any] | None:
    value = _maybe_json(value)
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
    return None if value is None else separator.join(stringify(item) for item in value)


def split(value: Any, delimiter: str, limit: int | None = None) -> list[str] | None:
    """Java ``String.split``: regex delimiter, trailing empty strings dropped unless a limit is given."""
    if value is None:
        return None
    text = stringify(value)
    if limit is not None and limit > 0:
        return re.split(delimiter, text, maxsplit=limit - 1)
    parts = re.split(delimiter, text)
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


def _java_replacement(template: str) -> Callable[[re.Match[str]], str]:
    """Java regex replacement strings use ``$1`` / ``${name}`` and ``\\`` escapes."""

    def expand(match: re.Match[str]) -> str:
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
            text = re.sub(str(old), _java_replacement(stringify(repl)), text)
        else:
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


@lru_cache(maxsize=256)
def _jq_program(expression: str) -> Any:
    return jq.compile(expression)


def jq_filter(value: Any, expression: str) -> list[Any] | None:
    """Run a jq expression; like Kestra this always returns the list of all results."""
    if value is None:
        return None
    data = _maybe_json(value) if isinstance(value, str) else json.loads(to_json(value))
    return list(_jq_program(expression).input_value(data).all())


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
    out: list[Any] = []
    for item in value:
        if item not in out:  # equality, not hashing: items are often dicts
            out.append(item)
    return out


def merge(value: Any, other: Any) -> Any:
    if isinstance(value, Mapping):
        return {**value, **other}
    return [*value, *(other if isinstance(other, list | tuple) else [other])]


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
    """``{% for %}`` over a map yields entries in Pebble, keys in Jinja; keep Pebble's behaviour."""
    if isinstance(value, Mapping):
        return [MapEntry(k, v) for k, v in value.items()]
    return value


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
    "timestamp": _timestamp(1),
    "timestampMilli": _timestamp(1_000),
    "timestampMicro": _timestamp(1_000_000),
    "timestampNano": _timestamp(1_000_000_000),
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
    "yaml": lambda v: yaml.safe_dump(json.loads(to_json(v)), sort_keys=False, allow_unicode=True),
}

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
