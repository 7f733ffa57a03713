"""The `conditions` of a Schedule trigger: which of its cron dates fire. Kestra's ScheduleCondition types.

A condition is tested once per cron date, in a scope holding `{{ trigger.* }}` (and `{{ schedule.* }}`) of that date,
`{{ flow.* }}` and `kv()`; a date for which one condition fails passes by without an execution. Every string
property is rendered first, as Kestra renders them, so `date` defaults to `{{ trigger.date }}` and may name any
other date. A value that is not a template is checked when the flow is loaded, so a misspelled day is a load error.
"""

from __future__ import annotations

import locale
from collections.abc import Mapping
from datetime import UTC, datetime, time, tzinfo
from datetime import date as Day  # `date` is also the name of the conditions' property
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app import templating

DAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
IN_MONTH = ("FIRST", "SECOND", "THIRD", "FOURTH", "LAST")
_DEFAULT_DATE = "{{ trigger.date }}"


def _templated(value: str) -> bool:
    return "{{" in value or "{%" in value


def _one_of(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def _moment(text: str, zone: tzinfo) -> datetime:
    """An ISO-8601 date or date-time; one without a zone is in the trigger's time zone."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO-8601 date or date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def _offset_time(text: str) -> time:
    try:
        moment = time.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO-8601 time") from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no offset: write it as Kestra does, e.g. 16:00:00+02:00 or 16:00:00Z")
    return moment


def _on_utc_clock(moment: time) -> float:
    """Seconds of the day minus the offset: how Java compares two OffsetTimes (no wrap at midnight)."""
    offset = moment.utcoffset()
    assert offset is not None
    seconds = moment.hour * 3600 + moment.minute * 60 + moment.second + moment.microsecond / 1e6
    return seconds - offset.total_seconds()


class _ScheduleCondition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def test(self, scope: Mapping[str, Any], zone: tzinfo) -> bool:
        raise NotImplementedError

    @staticmethod
    def _render(value: str, scope: Mapping[str, Any]) -> str:
        return templating.render(value, scope) if _templated(value) else value


class _OnDate(_ScheduleCondition):
    date: str = _DEFAULT_DATE

    def _day(self, scope: Mapping[str, Any], zone: tzinfo) -> Day:
        return _moment(self._render(self.date, scope), zone).date()


class DayWeek(_OnDate):
    type: Literal["io.kestra.plugin.core.condition.DayWeek", "io.kestra.plugin.core.condition.DayWeekCondition",
                  "io.kestra.core.models.conditions.types.DayWeekCondition"]
    dayOfWeek: str

    @field_validator("dayOfWeek")
    @classmethod
    def _day_name(cls, value: str) -> str:
        return value if _templated(value) else _one_of(value, DAYS, "dayOfWeek")

    def test(self, scope: Mapping[str, Any], zone: tzinfo) -> bool:
        wanted = _one_of(self._render(self.dayOfWeek, scope), DAYS, "dayOfWeek")
        return DAYS[self._day(scope, zone).weekday()] == wanted


class DayWeekInMonth(_OnDate):
    type: Literal["io.kestra.plugin.core.condition.DayWeekInMonth",
                  "io.kestra.plugin.core.condition.DayWeekInMonthCondition",
                  "io.kestra.core.models.conditions.types.DayWeekInMonthCondition"]
    dayOfWeek: str
    dayInMonth: str

    @field_validator("dayOfWeek")
    @classmethod
    def _day_name(cls, value: str) -> str:
        return value if _templated(value) else _one_of(value, DAYS, "dayOfWeek")

    @field_validator("dayInMonth")
    @classmethod
    def _which(cls, value: str) -> str:
        return value if _templated(value) else _one_of(value, IN_MONTH, "dayInMonth")

    def test(self, scope: Mapping[str, Any], zone: tzinfo) -> bool:
        wanted = DAYS.index(_one_of(self._render(self.dayOfWeek, scope), DAYS, "dayOfWeek"))
        which = _one_of(self._render(self.dayInMonth, scope), IN_MONTH, "dayInMonth")
        day = self._day(scope, zone)
        if day.weekday() != wanted:
            return False
        week = (day.day - 1) // 7  # 0 for the first such weekday of the month, 1 for the second, ...
        if which == "LAST":
            return (day.day + 7) > _days_in_month(day)
        return week == IN_MONTH.index(which)


class Weekend(_OnDate):
    type: Literal["io.kestra.plugin.core.condition.Weekend", "io.kestra.plugin.core.condition.WeekendCondition",
                  "io.kestra.core.models.conditions.types.WeekendCondition"]

    def test(self, scope: Mapping[str, Any], zone: tzinfo) -> bool:
        return self._day(scope, zone).weekday() >= 5


class PublicHoliday(_OnDate):
    """A public holiday of `country` (ISO 3166-1 alpha-2), and of its `subDivision` (ISO 3166-2: a state or
    province) when given; without a country, the country of the server's locale, as Kestra does."""

    type: Literal["io.kestra.plugin.core.condition.PublicHoliday",
                  "io.kestra.plugin.core.condition.PublicHolidayCondition",
                  "io.kestra.core.models.conditions.types.PublicHolidayCondition"]
    country: str | None = None
    subDivision: str | None = None

    @model_validator(mode="after")
    def _known(self) -> PublicHoliday:
        if self.country is not None and not _templated(self.country) and \
                (self.subDivision is None or not _templated(self.subDivision)):
            _calendar(self.country, self.subDivision)
        return self

    def test(self, scope: Mapping[str, Any], zone: tzinfo) -> bool:
        country = self._render(self.country, scope) if self.country is not None else _locale_country()
        division = self._render(self.subDivision, scope) if self.subDivision is not None else None
        return self._day(scope, zone) in _calendar(country, division)


class TimeBetween(_OnDate):
    """The time of `date` strictly after `after` and strictly before `before` (times with an offset)."""

    type: Literal["io.kestra.plugin.core.condition.TimeBetween",
                  "io.kestra.plugin.core.condition.TimeBetweenCondition",
                  "io.kestra.core.models.conditions.types.TimeBetweenCondition"]
    after: str | None = None
    before: str | None = None

    @model_validator(mode="after")
    def _bounds(self) -> TimeBetween:
        if self.after is None and self.before is None:
            raise ValueError("TimeBetween needs `after`, `before` or both")
        for bound in (self.after, self.before):
            if bound is not None and not _templated(bound):
                _offset_time(bound)
        return self

    def test(self, scope: Mapping[str, Any], zone: tzinfo) -> bool:
        moment = _moment(self._render(self.date, scope), zone)
        current = _on_utc_clock(moment.timetz())
        after = _on_utc_clock(_offset_time(self._render(self.after, scope))) if self.after else None
        before = _on_utc_clock(_offset_time(self._render(self.before, scope))) if self.before else None
        return (after is None or current > after) and (before is None or current < before)


class DateTimeBetween(_OnDate):
    """`date` at or after `after` and at or before `before` (date-times; one without a zone is in the trigger's)."""

    type: Literal["io.kestra.plugin.core.condition.DateTimeBetween",
                  "io.kestra.plugin.core.condition.DateTimeBetweenCondition",
                  "io.kestra.core.models.conditions.types.DateTimeBetweenCondition"]
    after: str | None = None
    before: str | None = None

    @field_validator("after", "before", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return value.isoformat() if isinstance(value, datetime | Day) else value  # YAML reads bare dates

    @model_validator(mode="after")
    def _bounds(self) -> DateTimeBetween:
        if self.after is None and self.before is None:
            raise ValueError("DateTimeBetween needs `after`, `before` or both")
        for bound in (self.after, self.before):
            if bound is not None and not _templated(bound):
                _moment(bound, UTC)
        return self

    def test(self, scope: Mapping[str, Any], zone: tzinfo) -> bool:
        moment = _moment(self._render(self.date, scope), zone)
        after = _moment(self._render(self.after, scope), zone) if self.after else None
        before = _moment(self._render(self.before, scope), zone) if self.before else None
        return (after is None or moment >= after) and (before is None or moment <= before)


class Expression(_ScheduleCondition):
    """True unless the rendered expression is empty, blank or `false`."""

    type: Literal["io.kestra.plugin.core.condition.Expression", "io.kestra.plugin.core.condition.ExpressionCondition",
                  "io.kestra.core.models.conditions.types.VariableCondition"]
    expression: str

    def test(self, scope: Mapping[str, Any], zone: tzinfo) -> bool:
        rendered = self._render(self.expression, scope).strip()
        return rendered not in ("", "false")


class Not(_ScheduleCondition):
    """True when none of its conditions holds."""

    type: Literal["io.kestra.plugin.core.condition.Not", "io.kestra.plugin.core.condition.NotCondition",
                  "io.kestra.core.models.conditions.types.NotCondition"]
    conditions: list[ScheduleCondition] = Field(min_length=1)

    def test(self, scope: Mapping[str, Any], zone: tzinfo) -> bool:
        return not any(c.test(scope, zone) for c in self.conditions)


class Or(_ScheduleCondition):
    """True when at least one of its conditions holds."""

    type: Literal["io.kestra.plugin.core.condition.Or", "io.kestra.plugin.core.condition.OrCondition",
                  "io.kestra.core.models.conditions.types.OrCondition"]
    conditions: list[ScheduleCondition] = Field(min_length=1)

    def test(self, scope: Mapping[str, Any], zone: tzinfo) -> bool:
        return any(c.test(scope, zone) for c in self.conditions)


ScheduleCondition = Annotated[
    DayWeek | DayWeekInMonth | Weekend | PublicHoliday | TimeBetween | DateTimeBetween | Expression | Not | Or,
    Field(discriminator="type"),
]
Not.model_rebuild()
Or.model_rebuild()

def _days_in_month(day: Day) -> int:
    following = Day(day.year + (day.month == 12), day.month % 12 + 1, 1)
    return (following - Day(day.year, day.month, 1)).days


def _locale_country() -> str:
    name = locale.getlocale()[0] or ""
    if "_" not in name:
        raise ValueError("PublicHoliday has no `country` and the server's locale names none (set `country`, "
                         "e.g. country: FR)")
    return name.split("_", 1)[1][:2]


@lru_cache(maxsize=64)
def _calendar(country: str, division: str | None) -> Any:
    import holidays  # imported on first use: a calendar module is loaded only for flows that name a country

    code = country.strip().upper()
    subdivision = division.strip().upper().removeprefix(code + "-") if division else None
    try:
        return holidays.country_holidays(code, subdiv=subdivision)
    except NotImplementedError as exc:  # "Country XX not available", "Entity `US` does not have subdivision ZZ"
        raise ValueError(f"PublicHoliday: {exc}") from None


def conditions_hold(conditions: list[Any], scope: Mapping[str, Any], zone: tzinfo) -> bool:
    """Every condition holds for the date in `scope` (Kestra: all of a trigger's conditions must be valid)."""
    return all(c.test(scope, zone) for c in conditions)


__all__ = ["ScheduleCondition", "conditions_hold"]
