"""Scalar inputs: STRING, SECRET, INT, FLOAT, BOOLEAN, DATETIME, DATE, TIME, DURATION; `Input` is their base."""

from __future__ import annotations

import contextlib
import re
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, ClassVar, Literal

import regex
from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from app.model.inputs.values import InvalidValue, describe, format_duration, parse_duration, scalar_str, utc

VALIDATOR_SECONDS = 1.0  # a `validator` that backtracks (`(a+)+$`) on a long value must not hold the process


def _fullmatch(pattern: str, text: str) -> Any:
    try:
        return regex.fullmatch(pattern, text, timeout=VALIDATOR_SECONDS)
    except TimeoutError:
        raise InvalidValue(f"validator '{pattern}' took more than {VALIDATOR_SECONDS:g} s on this value") from None


class DependsOn(BaseModel):
    """Kestra's input `dependsOn`: the inputs this one waits for and when it applies."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    inputs: list[str] = Field(default_factory=list)
    condition: str | bool | None = None


class Input(BaseModel):
    """Properties shared by every input type. Subclasses add ``type`` and their own validation properties."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    # Kestra's id pattern; it also keeps ids safe to use as a storage path segment (FILE inputs).
    id: str = Field(validation_alias=AliasChoices("id", "name"), pattern=r"^[a-zA-Z0-9][.a-zA-Z0-9_-]*$")
    required: bool = True
    defaults: Any = None
    description: str | None = None
    # The input's label where it is shown (`celestra flow describe`, messages about it).
    display_name: str | None = Field(default=None, alias="displayName")
    # Resolved after `inputs`; while `condition` renders false (or one of them is off) the input is off: not
    # asked for, not required, absent from `inputs` (resolve_inputs).
    depends_on: DependsOn | None = Field(default=None, alias="dependsOn")
    # A suggested value shown where inputs are filled in; unlike `defaults` it never supplies a value by itself.
    prefill: Any = None

    @model_validator(mode="after")
    def _prefill_is_a_value(self) -> Input:
        if self.prefill is None:
            return self
        if self.defaults is not None:
            raise ValueError("`prefill` and `defaults` cannot both be set: `defaults` always gives a value, "
                             "`prefill` only suggests one that can be removed")
        if getattr(self, "type", None) != "FILE":  # a FILE prefill is a path known only where it starts
            try:
                self.coerce(self.prefill)
            except InvalidValue as exc:
                raise ValueError(f"invalid prefill: {exc}") from None
        return self

    @property
    def label(self) -> str:
        """How messages name the input: its id, with its display name when it has one."""
        return f"'{self.id}'" + (f" ({self.display_name})" if self.display_name else "")

    # Whether "" counts as "no value": true for typed inputs, whose empty form field means "not filled in".
    blank_is_missing: ClassVar[bool] = True

    def coerce(self, value: Any) -> Any:
        """Turn a given (or default) value into the canonical value; raise InvalidValue with a reason otherwise."""
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
                regex.compile(pattern)
            except regex.error as exc:
                raise ValueError(f"invalid validator regex: {exc}") from None
        return pattern

    def coerce(self, value: Any) -> Any:
        text = scalar_str(value)
        if self.validator is not None and _fullmatch(self.validator, text) is None:
            raise InvalidValue(f"value does not match validator '{self.validator}'")
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
        except InvalidValue:
            # Never echo a secret back in an error message (it ends up in logs and API responses).
            raise InvalidValue("secret value is invalid") from None


def _bounded(value: Any, low: Any, high: Any) -> Any:
    if low is not None and value < low:
        raise InvalidValue(f"{value} is below the minimum {low}")
    if high is not None and value > high:
        raise InvalidValue(f"{value} is above the maximum {high}")
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
            raise InvalidValue(f"expected an integer, got {describe(value)}")
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
            raise InvalidValue(f"expected a number, got {describe(value)}")
        return _bounded(float(value), self.min, self.max)


class BooleanInput(Input):
    type: Literal["BOOLEAN", "BOOL"]  # BOOL: Kestra's newer name for the same input

    def coerce(self, value: Any) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise InvalidValue(f"expected true or false, got {describe(value)}")


class _Temporal(Input):
    """Common shape of DATETIME/DATE/TIME: parse, then check the `after`/`before` bounds, which (as Kestra's
    isBefore/isAfter checks) admit the bound itself."""

    what: ClassVar[str]

    def parse(self, value: Any) -> Any:
        raise NotImplementedError

    def render(self, value: Any) -> str:
        return str(value.isoformat())

    def coerce(self, value: Any) -> Any:
        try:
            parsed = self.parse(value)
        except (ValueError, TypeError):
            raise InvalidValue(f"expected {self.what}, got {describe(value)}") from None
        after, before = getattr(self, "after", None), getattr(self, "before", None)
        if after is not None and parsed < after:
            raise InvalidValue(f"{self.render(parsed)} must be after {self.render(after)}")
        if before is not None and parsed > before:
            raise InvalidValue(f"{self.render(parsed)} must be before {self.render(before)}")
        return self.render(parsed)


class DateTimeInput(_Temporal):
    type: Literal["DATETIME"]
    after: datetime | None = None
    before: datetime | None = None
    what: ClassVar[str] = "an ISO-8601 datetime such as '2024-01-01T00:00:00Z'"

    @field_validator("after", "before")
    @classmethod
    def _bound_utc(cls, bound: datetime | None) -> datetime | None:
        return None if bound is None else utc(bound)

    def parse(self, value: Any) -> Any:
        if isinstance(value, str):
            value = datetime.fromisoformat(value.strip())
        elif isinstance(value, date) and not isinstance(value, datetime):
            value = datetime.combine(value, time())
        if not isinstance(value, datetime):
            raise TypeError
        return utc(value)

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


def _duration_bound(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return parse_duration(value)
    except InvalidValue as exc:
        raise ValueError(str(exc)) from None


_DurationBound = Annotated[timedelta, BeforeValidator(_duration_bound)]


class DurationInput(Input):
    type: Literal["DURATION"]
    min: _DurationBound | None = None  # both bounds admit themselves, as in Kestra
    max: _DurationBound | None = None

    def coerce(self, value: Any) -> Any:
        td = value if isinstance(value, timedelta) else parse_duration(scalar_str(value, "a duration"))
        if self.min is not None and td < self.min:
            raise InvalidValue(f"{format_duration(td)} must be more than {format_duration(self.min)}")
        if self.max is not None and td > self.max:
            raise InvalidValue(f"{format_duration(td)} must be less than {format_duration(self.max)}")
        return format_duration(td)
