"""Dates in templates: Java (DateTimeFormatter) patterns, time zones, `date`, `dateAdd`, `timestamp*`, `now()`."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.parser import isoparse
from dateutil.relativedelta import relativedelta

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


def timestamp(scale: int) -> Callable[..., int | None]:
    def convert(value: Any, timeZone: str | None = None, existingFormat: str | None = None) -> int | None:
        if value is None:
            return None
        # integer arithmetic on the delta keeps nanosecond/microsecond results exact (no float rounding)
        delta = to_datetime(value, _zone(timeZone), existingFormat) - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * scale + delta.microseconds * scale // 1_000_000

    return convert


def now(format: str | None = None, timeZone: str | None = None) -> str | None:
    return format_date(datetime.now(UTC), format, timeZone)
