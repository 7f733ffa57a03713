"""Kestra's serdes conversions between CSV, JSON and Ion files of the internal storage: CsvToIon, IonToCsv,
JsonToIon and IonToJson (and their old names CsvReader, CsvWriter, JsonReader, JsonWriter). `pip install
'celestra[sql]'` brings amazon.ion.

Every conversion streams: one row is read, converted and written at a time (a JSON array given with
`newLine: false` is the one case read whole, as in Kestra). Ion files hold one value per line, as Kestra writes
them (and as the SQL tasks' STORE does). Only files of the task's own namespace are read.
"""

from __future__ import annotations

import codecs
import csv
import datetime
import io
import json
import re
import zoneinfo
from collections.abc import Iterator, Mapping
from typing import IO, Annotated, Any, BinaryIO, Literal, cast

from pydantic import Field

from app.model.flow import not_supported_yet
from workers.plugin_api import RunContext, RunnableTask, TaskFailure
from workers.plugins.sql_support import ion_line, json_cell
from workers.plugins.storage import new_spool, owned_file, reading, store_spooled

_JAVA_TOKENS = re.compile(r"'[^']*'|\[|\]|yyyy|yy|MM|dd|HH|hh|mm|ss|SSS|XXX|Z|a|[A-Za-z]|.")


def java_format(moment: datetime.date, pattern: str) -> str:
    """A date or time written with a Java DateTimeFormatter pattern (the letters Kestra's defaults use)."""
    out: list[str] = []
    optional = 0
    for token in _JAVA_TOKENS.findall(pattern):
        if token in ("[", "]"):
            optional += 1 if token == "[" else -1
            continue
        if token == "XXX" or token == "Z":
            offset = moment.utcoffset() if isinstance(moment, datetime.datetime) else None
            if offset is None:
                if optional:
                    continue
                raise TaskFailure(f"the format '{pattern}' needs a zone offset and the value has none")
            if token == "XXX" and offset == datetime.timedelta(0):
                out.append("Z")
                continue
            sign = "-" if offset < datetime.timedelta(0) else "+"
            minutes = abs(int(offset.total_seconds())) // 60
            out.append(f"{sign}{minutes // 60:02d}{':' if token == 'XXX' else ''}{minutes % 60:02d}")
        elif token.startswith("'"):
            out.append(token[1:-1] or "'")
        elif token == "SSS":
            out.append(f"{getattr(moment, 'microsecond', 0) // 1000:03d}")
        elif token in _STRFTIME:
            out.append(moment.strftime(_STRFTIME[token]))
        elif token.isalpha():
            raise TaskFailure(f"the pattern letter '{token}' of '{pattern}' is not supported yet "
                              "(yyyy yy MM dd HH hh mm ss SSS a XXX Z, 'literals', [optional])")
        else:
            out.append(token)
    return "".join(out)


_STRFTIME = {"yyyy": "%Y", "yy": "%y", "MM": "%m", "dd": "%d", "HH": "%H", "hh": "%I", "mm": "%M", "ss": "%S",
             "a": "%p"}


def _ion_values(stream: BinaryIO) -> Iterator[Any]:
    try:
        from amazon.ion import simpleion
    except ImportError as exc:
        raise TaskFailure(f"The serdes tasks read Ion files and need amazon.ion: pip install 'celestra[sql]' "
                          f"({exc})") from exc
    try:
        yield from simpleion.load(stream, single_value=False, parse_eagerly=False)
    except (ValueError, TypeError) as exc:
        raise TaskFailure(f"The file is not valid Ion: {exc}") from None


def _plain(value: Any) -> Any:
    """An Ion value as plain Python (IonPy types are subclasses; an Ion null is None)."""
    from amazon.ion.core import IonType, TimestampPrecision
    from amazon.ion.simple_types import IonPyNull

    if isinstance(value, IonPyNull) or value is None:
        return None
    if isinstance(value, Mapping):  # IonPyDict is a Mapping, not a dict
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime.datetime):
        if getattr(value, "precision", None) == TimestampPrecision.DAY:
            return datetime.date(value.year, value.month, value.day)
        return datetime.datetime(value.year, value.month, value.day, value.hour, value.minute, value.second,
                                 value.microsecond, value.tzinfo)
    if getattr(value, "ion_type", None) == IonType.BOOL:  # IonPyBool is an int (bool cannot be subclassed)
        return bool(value)
    for kind in (bool, int, float, str, bytes):
        if isinstance(value, kind):
            return kind(value)  # type: ignore[arg-type]  # the IonPy subclass as its plain type
    return value


class _Conversion(RunnableTask):
    from_: str = Field(alias="from")

    def _source(self, ctx: RunContext) -> str:
        return owned_file(ctx, ctx.render_str(self.from_))

    @staticmethod
    def _charset(ctx: RunContext, value: str) -> str:
        name = ctx.render_str(value).strip()
        try:
            codecs.lookup(name)
        except LookupError:
            raise TaskFailure(f"charset: unknown charset '{name}'") from None
        return name


class CsvToIon(_Conversion):
    type: Literal["io.kestra.plugin.serdes.csv.CsvToIon", "io.kestra.plugin.serdes.csv.CsvReader", "CsvToIon"]
    header: bool = True
    fieldSeparator: str = ","
    textDelimiter: str = '"'
    skipEmptyRows: bool = False
    errorOnDifferentFieldCount: bool = False
    skipRows: int = 0
    charset: str = "UTF-8"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        spool = new_spool()
        with reading(ctx, self._source(ctx)) as stream:
            text = io.TextIOWrapper(stream, encoding=self._charset(ctx, self.charset), newline="")
            rows = csv.reader(text, delimiter=_char(self.fieldSeparator, "fieldSeparator"),
                              quotechar=_char(self.textDelimiter, "textDelimiter"))
            header: list[str] | None = None
            width: int | None = None
            skipped = 0
            for line, row in enumerate(rows, start=1):
                if not row and self.skipEmptyRows:
                    continue
                if width is None:
                    width = len(row)
                elif self.errorOnDifferentFieldCount and len(row) != width:
                    raise TaskFailure(f"line {line} has {len(row)} fields, the first one {width} "
                                      "(errorOnDifferentFieldCount)")
                if self.header and header is None:
                    header = row
                    continue
                if skipped < self.skipRows:
                    skipped += 1
                    continue
                value: Any = {name: (row[i] if i < len(row) else None) for i, name in enumerate(header)} \
                    if header is not None else row
                spool.write(ion_line(value, None))
            text.detach()
        return {"uri": store_spooled(ctx, "data.ion", spool)}


class IonToCsv(_Conversion):
    type: Literal["io.kestra.plugin.serdes.csv.IonToCsv", "io.kestra.plugin.serdes.csv.CsvWriter", "IonToCsv"]
    header: bool = True
    fieldSeparator: str = ","
    textDelimiter: str = '"'
    lineDelimiter: str = "\n"
    alwaysDelimitText: bool = False
    charset: str = "UTF-8"
    dateFormat: str = "yyyy-MM-dd"
    timeFormat: Annotated[str, not_supported_yet(  # Ion has no time-of-day type: no cell would ever use it
        "timeFormat", "HH:mm:ss[XXX]", ": Ion files hold no time-of-day values (times are text)")] = "HH:mm:ss[XXX]"
    dateTimeFormat: str = "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"
    timeZoneId: str = "UTC"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        zone_name = ctx.render_str(self.timeZoneId).strip()
        try:
            zone = zoneinfo.ZoneInfo(zone_name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise TaskFailure(f"timeZoneId: unknown time zone '{zone_name}'") from None
        formats = (ctx.render_str(self.dateFormat), ctx.render_str(self.dateTimeFormat))
        spool = new_spool()
        text = io.TextIOWrapper(cast(IO[bytes], spool), encoding=self._charset(ctx, self.charset), newline="")
        writer = csv.writer(text, delimiter=_char(self.fieldSeparator, "fieldSeparator"),
                            quotechar=_char(self.textDelimiter, "textDelimiter"), lineterminator=self.lineDelimiter,
                            quoting=csv.QUOTE_ALL if self.alwaysDelimitText else csv.QUOTE_MINIMAL)
        first = True
        with reading(ctx, self._source(ctx)) as stream:
            for raw in _ion_values(stream):
                row = _plain(raw)
                if isinstance(row, list):
                    if self.header:
                        raise TaskFailure("Invalid data of type List with header: set header to false")
                    writer.writerow([_text(v, zone, formats) for v in row])
                elif isinstance(row, dict):
                    if first and self.header:
                        writer.writerow(list(row))
                    writer.writerow([_text(v, zone, formats) for v in row.values()])
                first = False
        text.flush()
        text.detach()
        return {"uri": store_spooled(ctx, "data.csv", spool)}


class JsonToIon(_Conversion):
    type: Literal["io.kestra.plugin.serdes.json.JsonToIon", "io.kestra.plugin.serdes.json.JsonReader", "JsonToIon"]
    charset: str = "UTF-8"
    newLine: bool = True  # JSON lines; false: one JSON document (an array gives one row per item), read whole

    def run(self, ctx: RunContext) -> dict[str, Any]:
        spool = new_spool()
        with reading(ctx, self._source(ctx)) as stream:
            text = io.TextIOWrapper(stream, encoding=self._charset(ctx, self.charset))
            try:
                if self.newLine:
                    values: Any = (json.loads(line) for line in text if line.strip())
                else:
                    document = json.load(text)
                    values = document if isinstance(document, list) else [document]
                for value in values:
                    spool.write(ion_line(value, None))
            except ValueError as exc:
                raise TaskFailure(f"The file is not valid JSON{' lines' if self.newLine else ''}: {exc}") from None
            text.detach()
        return {"uri": store_spooled(ctx, "data.ion", spool)}


class IonToJson(_Conversion):
    type: Literal["io.kestra.plugin.serdes.json.IonToJson", "io.kestra.plugin.serdes.json.JsonWriter", "IonToJson"]
    charset: str = "UTF-8"
    newLine: bool = True  # JSON lines (.jsonl); false: one JSON array (.json)
    timeZoneId: str | None = None  # timestamps are shown in this zone

    def run(self, ctx: RunContext) -> dict[str, Any]:
        zone = None
        if self.timeZoneId:
            name = ctx.render_str(self.timeZoneId).strip()
            try:
                zone = zoneinfo.ZoneInfo(name)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise TaskFailure(f"timeZoneId: unknown time zone '{name}'") from None
        spool = new_spool()
        text = io.TextIOWrapper(cast(IO[bytes], spool), encoding=self._charset(ctx, self.charset), newline="")
        count = 0
        with reading(ctx, self._source(ctx)) as stream:
            if not self.newLine:
                text.write("[")
            for raw in _ion_values(stream):
                value = json.dumps(json_cell(_shown(_plain(raw), zone), None), ensure_ascii=False)
                text.write(value + "\n" if self.newLine else ("," if count else "") + value)
                count += 1
            if not self.newLine:
                text.write("]")
        text.flush()
        text.detach()
        return {"uri": store_spooled(ctx, "data.jsonl" if self.newLine else "data.json", spool)}


def _char(value: str, name: str) -> str:
    if len(value) != 1:
        raise TaskFailure(f"{name} must be one character, got '{value}'")
    return value


def _shown(value: Any, zone: datetime.tzinfo | None) -> Any:
    if zone is None:
        return value
    if isinstance(value, datetime.datetime):
        return value.astimezone(zone) if value.tzinfo else value.replace(tzinfo=zone)
    if isinstance(value, dict):
        return {k: _shown(v, zone) for k, v in value.items()}
    if isinstance(value, list):
        return [_shown(v, zone) for v in value]
    return value


def _text(value: Any, zone: datetime.tzinfo, formats: tuple[str, str]) -> str | None:
    """A cell as IonToCsv writes it: dates and timestamps in the task's formats, the rest as text."""
    date_format, datetime_format = formats
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
        return java_format(aware.astimezone(zone), datetime_format)
    if isinstance(value, datetime.date):
        return java_format(value, date_format)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(json_cell(value, None))
    return str(value)


TASKS: list[type[RunnableTask]] = [CsvToIon, IonToCsv, JsonToIon, IonToJson]  # the `serdes` family (pyproject.toml)
