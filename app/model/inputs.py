"""Kestra flow inputs: declarations (one pydantic model per ``type``) and resolution of given values.

Values come from a CLI/HTTP form (strings) or from Python (native values); each type coerces both forms to
one canonical value so tasks and templates see the same thing whichever way an execution was started.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from app.model.storage_uri import is_storage_uri

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


class _Bad(Exception):
    """Raised by coercers with a bare reason; resolve_inputs prefixes it with the input id."""


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _scalar_str(value: Any, what: str = "a string") -> str:
    # Numbers are accepted for text-like inputs because YAML turns `defaults: 42` into an int.
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise _Bad(f"expected {what}, got {_describe(value)}")


def _json_list(value: Any, what: str) -> list[Any]:
    # CLI values such as "a,b" are deliberately not split: commas are legal inside items.
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise _Bad(f"expected {what} as a JSON array, got {_describe(value)}") from None
    if isinstance(value, list | tuple):
        return list(value)
    raise _Bad(f"expected {what}, got {_describe(value)}")


def _utc(dt: datetime) -> datetime:
    # Kestra DATETIME is an Instant: a value without offset is taken as UTC rather than server-local time.
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


_DURATION_RE = re.compile(
    r"P(?:(?P<d>\d+)D)?(?:T(?=\d)(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:[.,]\d{1,9})?)S)?)?",
    re.IGNORECASE,
)


def _parse_duration(text: str) -> timedelta:
    match = _DURATION_RE.fullmatch(text.strip())
    if not match or not any(match.groupdict().values()):
        raise _Bad(f"expected an ISO-8601 duration such as 'PT5M', got {_describe(text)}")
    g = {k: v or "0" for k, v in match.groupdict().items()}
    seconds = float(g["s"].replace(",", "."))
    return timedelta(days=int(g["d"]), hours=int(g["h"]), minutes=int(g["m"]), seconds=seconds)


def _format_duration(td: timedelta) -> str:
    """Canonical form as Java's Duration.toString() prints it (P1D -> PT24H), so equal durations are equal."""
    if td < timedelta(0):
        raise _Bad(f"duration must not be negative, got {td}")
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


class Input(BaseModel):
    """Properties shared by every input type. Subclasses add ``type`` and their own validation properties."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    # Kestra's id pattern; it also keeps ids safe to use as a storage path segment (FILE inputs).
    id: str = Field(validation_alias=AliasChoices("id", "name"), pattern=r"^[a-zA-Z0-9][.a-zA-Z0-9_-]*$")
    required: bool = True
    defaults: Any = None
    description: str | None = None
    display_name: str | None = Field(default=None, alias="displayName")
    # Only accepted so flows that use it validate; conditional display is a UI concern.
    depends_on: Any = Field(default=None, alias="dependsOn")
    # UI-only hint in Kestra (pre-filled but removable); unlike `defaults` it never supplies a value.
    prefill: Any = None

    # Whether "" counts as "no value": true for typed inputs, whose empty form field means "not filled in".
    blank_is_missing: ClassVar[bool] = True

    def coerce(self, value: Any) -> Any:
        """Turn a given (or default) value into the canonical value; raise _Bad with a reason otherwise."""
        raise NotImplementedError

    def initial(self) -> Any:
        """Value used when nothing was given; None means "no value"."""
        return self.defaults


class _Validated(Input):
    validator: str | None = None

    @field_validator("validator")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid validator regex: {exc}") from None
        return pattern

    def coerce(self, value: Any) -> Any:
        text = _scalar_str(value)
        if self.validator is not None and re.fullmatch(self.validator, text) is None:
            raise _Bad(f"value does not match validator '{self.validator}'")
        return text


class StringInput(_Validated):
    type: Literal["STRING"]
    blank_is_missing: ClassVar[bool] = False


class SecretInput(_Validated):
    type: Literal["SECRET"]
    blank_is_missing: ClassVar[bool] = False

    def coerce(self, value: Any) -> Any:
        try:
            return super().coerce(value)
        except _Bad:
            # Never echo a secret back in an error message (it ends up in logs and API responses).
            raise _Bad("secret value is invalid") from None


def _bounded(value: Any, low: Any, high: Any) -> Any:
    if low is not None and value < low:
        raise _Bad(f"{value} is below the minimum {low}")
    if high is not None and value > high:
        raise _Bad(f"{value} is above the maximum {high}")
    return value


class IntInput(Input):
    type: Literal["INT"]
    min: int | None = None
    max: int | None = None

    def coerce(self, value: Any) -> Any:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise _Bad(f"expected an integer, got {_describe(value)}")
        return _bounded(value, self.min, self.max)


class FloatInput(Input):
    type: Literal["FLOAT"]
    min: float | None = None
    max: float | None = None

    def coerce(self, value: Any) -> Any:
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = float(value)
        # NaN compares unequal to itself and would slip through every min/max check.
        if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
            raise _Bad(f"expected a number, got {_describe(value)}")
        return _bounded(float(value), self.min, self.max)


class BooleanInput(Input):
    type: Literal["BOOLEAN"]

    def coerce(self, value: Any) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise _Bad(f"expected true or false, got {_describe(value)}")


class _Temporal(Input):
    """Common shape of DATETIME/DATE/TIME: parse, then check strict `after`/`before` bounds."""

    what: ClassVar[str]

    def parse(self, value: Any) -> Any:
        raise NotImplementedError

    def render(self, value: Any) -> str:
        return str(value.isoformat())

    def coerce(self, value: Any) -> Any:
        try:
            parsed = self.parse(value)
        except (ValueError, TypeError):
            raise _Bad(f"expected {self.what}, got {_describe(value)}") from None
        after, before = getattr(self, "after", None), getattr(self, "before", None)
        if after is not None and not parsed > after:
            raise _Bad(f"{self.render(parsed)} must be after {self.render(after)}")
        if before is not None and not parsed < before:
            raise _Bad(f"{self.render(parsed)} must be before {self.render(before)}")
        return self.render(parsed)


class DateTimeInput(_Temporal):
    type: Literal["DATETIME"]
    after: datetime | None = None
    before: datetime | None = None
    what: ClassVar[str] = "an ISO-8601 datetime such as '2024-01-01T00:00:00Z'"

    @field_validator("after", "before")
    @classmethod
    def _bound_utc(cls, bound: datetime | None) -> datetime | None:
        return None if bound is None else _utc(bound)

    def parse(self, value: Any) -> Any:
        if isinstance(value, str):
            value = datetime.fromisoformat(value.strip())
        elif isinstance(value, date) and not isinstance(value, datetime):
            value = datetime.combine(value, time())
        if not isinstance(value, datetime):
            raise TypeError
        return _utc(value)

    def render(self, value: Any) -> str:
        spec = "milliseconds" if value.microsecond % 1000 == 0 and value.microsecond else "auto"
        return str(value.replace(tzinfo=None).isoformat(timespec=spec)) + "Z"


class DateInput(_Temporal):
    type: Literal["DATE"]
    after: date | None = None
    before: date | None = None
    what: ClassVar[str] = "a date such as '2024-01-31'"

    def parse(self, value: Any) -> Any:
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
            return date.fromisoformat(value.strip())
        raise ValueError


class TimeInput(_Temporal):
    type: Literal["TIME"]
    after: time | None = None
    before: time | None = None
    what: ClassVar[str] = "a time such as '13:45:00'"

    def parse(self, value: Any) -> Any:
        if isinstance(value, str):
            value = time.fromisoformat(value.strip())
        # A local time with an offset has no Kestra equivalent (LocalTime); refuse rather than guess.
        if not isinstance(value, time) or value.tzinfo is not None:
            raise ValueError
        return value

    def render(self, value: Any) -> str:
        return str(value.isoformat(timespec="seconds" if not value.microsecond else "auto"))


class DurationInput(Input):
    type: Literal["DURATION"]

    def coerce(self, value: Any) -> Any:
        td = value if isinstance(value, timedelta) else _parse_duration(_scalar_str(value, "a duration"))
        return _format_duration(td)


class _Document(Input):
    """JSON/YAML: a string is parsed; a native value is kept, since it is what parsing would have produced."""

    fmt: ClassVar[str]

    def coerce(self, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value) if self.fmt == "JSON" else yaml.safe_load(value)
        except (ValueError, yaml.YAMLError) as exc:
            raise _Bad(f"invalid {self.fmt}: {exc}") from None


class JsonInput(_Document):
    type: Literal["JSON"]
    fmt: ClassVar[str] = "JSON"


class YamlInput(_Document):
    type: Literal["YAML"]
    fmt: ClassVar[str] = "YAML"


class _Pattern(Input):
    pattern: ClassVar[re.Pattern[str]]
    what: ClassVar[str]

    def coerce(self, value: Any) -> Any:
        text = _scalar_str(value).strip()
        if not self.pattern.fullmatch(text):
            raise _Bad(f"expected {self.what}, got {_describe(value)}")
        return text


class UriInput(_Pattern):
    type: Literal["URI"]
    pattern: ClassVar[re.Pattern[str]] = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:\S+")
    what: ClassVar[str] = "a URI with a scheme such as 'https://...'"


class EmailInput(_Pattern):
    type: Literal["EMAIL"]
    # Deliberately loose: the real grammar (RFC 5322) is huge and only a mail server can truly validate.
    pattern: ClassVar[re.Pattern[str]] = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
    what: ClassVar[str] = "an email address"


class _Choice(Input):
    allow_custom_value: bool = Field(default=False, alias="allowCustomValue")
    auto_select_first: bool = Field(default=False, alias="autoSelectFirst")

    @field_validator("values", "options", mode="before", check_fields=False)
    @classmethod
    def _texts(cls, items: Any) -> Any:
        # YAML reads `values: [1, 2]` as ints; Kestra treats choices as text, so compare them as text.
        if isinstance(items, list):
            return [_scalar_str(i) if isinstance(i, int | float) else i for i in items]
        return items

    def choices(self) -> list[str]:
        raise NotImplementedError

    def pick(self, value: Any) -> str:
        text = _scalar_str(value)
        if not self.allow_custom_value and text not in self.choices():
            raise _Bad(f"{_describe(text)} is not one of {self.choices()}")
        return text


class SelectInput(_Choice):
    type: Literal["SELECT", "ENUM"]  # ENUM is Kestra's deprecated spelling of SELECT
    values: list[str] = Field(min_length=1)

    def choices(self) -> list[str]:
        return self.values

    def coerce(self, value: Any) -> Any:
        return self.pick(value)

    def initial(self) -> Any:
        return self.values[0] if self.defaults is None and self.auto_select_first else self.defaults


class MultiselectInput(_Choice):
    type: Literal["MULTISELECT"]
    values: list[str] | None = None
    options: list[str] | None = None  # the older name of `values`

    @model_validator(mode="after")
    def _has_choices(self) -> MultiselectInput:
        if not (self.values or self.options) and not self.allow_custom_value:
            raise ValueError("MULTISELECT needs 'values' (or legacy 'options') unless allowCustomValue")
        if self.values and self.options:
            raise ValueError("use either 'values' or the legacy 'options', not both")
        return self

    def choices(self) -> list[str]:
        return list(self.values or self.options or [])

    def coerce(self, value: Any) -> Any:
        return [self.pick(item) for item in _json_list(value, "a list of values")]

    def initial(self) -> Any:
        first = self.choices()[:1]
        return first if self.defaults is None and self.auto_select_first and first else self.defaults


# Any scalar-ish type can be an item; FILE, SECRET and the choice types make no sense inside a plain array.
ItemType = (
    Literal["STRING", "INT", "FLOAT", "BOOLEAN", "DATETIME", "DATE", "TIME"]
    | Literal["DURATION", "JSON", "YAML", "URI", "EMAIL"]
)


class ArrayInput(Input):
    type: Literal["ARRAY"]
    item_type: ItemType = Field(alias="itemType")

    def coerce(self, value: Any) -> Any:
        # Reuse the item type's own coercion so "1" in an INT array behaves exactly like an INT input.
        item_def = _INPUT_ADAPTER.validate_python({"id": self.id, "type": self.item_type})
        out = []
        for index, item in enumerate(_json_list(value, "a list")):
            try:
                out.append(item_def.coerce(item))
            except _Bad as exc:
                raise _Bad(f"item {index}: {exc}") from None
        return out


class FileInput(Input):
    """A file: a `kestra://` URI already in storage, or a local path / bytes that get uploaded."""

    type: Literal["FILE"]

    # store_file is passed per call instead of living on the model, so declarations stay plain flow data.
    def coerce(self, value: Any, store_file: StoreFile | None = None) -> Any:
        if is_storage_uri(value):
            return value
        if store_file is None:
            raise _Bad(f"cannot upload {_describe(value)}: no storage available, pass a kestra:// URI")
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], bytes | bytearray):
            filename, data = str(value[0]), bytes(value[1])  # (filename, content) as uploaded over HTTP
        elif isinstance(value, bytes | bytearray):
            filename, data = self.id, bytes(value)
        elif isinstance(value, str | Path):
            path = Path(str(value).removeprefix("file://")).expanduser()
            try:
                filename, data = path.name, path.read_bytes()
            except OSError as exc:
                raise _Bad(f"cannot read file {str(value)!r}: {exc.strerror or exc}") from None
        else:
            raise _Bad(f"expected a kestra:// URI, a file path or bytes, got {_describe(value)}")
        # Uploaded names are client-controlled: keep only the base name so it stays one path segment.
        filename = re.split(r"[/\\]", filename)[-1]
        return store_file(self.id, filename if filename not in ("", ".", "..") else self.id, data)


InputDef = Annotated[
    StringInput | SecretInput | IntInput | FloatInput | BooleanInput | DateTimeInput | DateInput | TimeInput
    | DurationInput | JsonInput | YamlInput | UriInput | EmailInput | SelectInput | MultiselectInput
    | ArrayInput | FileInput,
    Field(discriminator="type"),
]

_INPUT_ADAPTER: TypeAdapter[InputDef] = TypeAdapter(InputDef)


def parse_input(data: Mapping[str, Any]) -> InputDef:
    """Validate one raw declaration (as loaded from flow YAML); raises pydantic.ValidationError."""
    return _INPUT_ADAPTER.validate_python(data)


def _is_missing(definition: Input, value: Any) -> bool:
    return value is None or (definition.blank_is_missing and isinstance(value, str) and not value.strip())


def resolve_inputs(
    defs: Sequence[InputDef], given: Mapping[str, Any], *, store_file: StoreFile | None = None
) -> dict[str, Any]:
    """Coerce given values (or defaults) for every declared input.

    Returns one entry per declared input, None for an optional input without value; undeclared keys of
    ``given`` are ignored like Kestra does. All problems are reported together, one line per input.
    """
    values: dict[str, Any] = {}
    errors: list[InputError] = []
    for definition in defs:
        raw = given.get(definition.id)
        from_default = _is_missing(definition, raw)
        if from_default:
            raw = definition.initial()
        if _is_missing(definition, raw):
            values[definition.id] = None
            if definition.required:
                errors.append(InputError(definition.id, f"Missing required input '{definition.id}'"))
            continue
        try:
            if isinstance(definition, FileInput):
                values[definition.id] = definition.coerce(raw, store_file)
            else:
                values[definition.id] = definition.coerce(raw)
        except _Bad as exc:
            where = " (default value)" if from_default else ""
            errors.append(InputError(definition.id, f"Invalid input '{definition.id}'{where}: {exc}"))
    if errors:
        message = "\n".join(str(err) for err in errors)
        raise InputError(errors[0].input_id, message, errors)
    return values


def coerce_output(output_id: str, type_name: str, value: Any) -> Any:
    """A flow output's rendered value as its declared type (Kestra types outputs like inputs: an INT output is an
    int). A FILE output stays the URI it rendered to; a value that does not fit raises InputError."""
    if value is None or type_name in ("FILE", "SECRET"):
        return value
    try:
        definition = parse_input({"id": output_id, "type": type_name})
    except Exception:  # a type only outputs use: kept as rendered
        return value
    try:
        return definition.coerce(value)
    except _Bad as exc:
        raise InputError(output_id, f"Output '{output_id}' is not a valid {type_name}: {exc}") from None
