"""Flow triggers. Schedule and ScheduleOnDates are typed and fired by `celestra server` (app/scheduler.py); other
trigger types (Flow, Webhook, polling triggers) are kept as written and not evaluated yet.

The fire dates are pure functions of the trigger and a time window, so they are tested without a clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from app.flow import Duration

SCHEDULE_TYPES = ("io.kestra.plugin.core.trigger.Schedule", "io.kestra.core.models.triggers.types.Schedule")
DATES_TYPES = ("io.kestra.plugin.core.trigger.ScheduleOnDates",)
MAX_RECOVERED = 1000  # fire dates recovered in one go after a long outage (recoverMissedSchedules: ALL)


class _Timed(BaseModel):
    """What both schedule triggers share."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$")
    description: str | None = None
    disabled: bool = False
    timezone: str = "Etc/UTC"
    inputs: dict[str, Any] = Field(default_factory=dict)
    recoverMissedSchedules: Literal["ALL", "LAST", "NONE"] = "ALL"
    lateMaximumDelay: Duration | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{value}'") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def next_after(self, moment: datetime) -> datetime | None:
        raise NotImplementedError

    def due(self, next_date: datetime, now: datetime) -> tuple[list[datetime], datetime | None]:
        """The dates to fire now, given the stored next fire date, and the next fire date after them.

        Missed dates (the server was down) follow recoverMissedSchedules; a date later than lateMaximumDelay is
        dropped, as Kestra drops it."""
        missed: list[datetime] = []
        moment: datetime | None = next_date
        while moment is not None and moment <= now and len(missed) < MAX_RECOVERED:
            missed.append(moment)
            moment = self.next_after(moment)
        while moment is not None and moment <= now:  # beyond MAX_RECOVERED: skipped, not fired
            moment = self.next_after(moment)
        if self.recoverMissedSchedules == "LAST":
            missed = missed[-1:]
        elif self.recoverMissedSchedules == "NONE":
            missed = [d for d in missed if d == missed[-1] and now - d < _ON_TIME]
        if self.lateMaximumDelay is not None:
            missed = [d for d in missed if now - d <= self.lateMaximumDelay]
        return missed, moment

    def variables(self, date: datetime, previous: datetime | None, following: datetime | None) -> dict[str, Any]:
        """`{{ trigger.* }}` of the execution fired for `date`."""
        return {"id": self.id, "type": self.type_name, "date": _iso(date), "next": _iso(following),
                "previous": _iso(previous)}

    type_name: ClassVar[str] = ""


_ON_TIME = timedelta(seconds=60)  # NONE still fires the current date when the scheduler is just a tick late


class Schedule(_Timed):
    type: Literal["io.kestra.plugin.core.trigger.Schedule", "io.kestra.core.models.triggers.types.Schedule"]
    cron: str
    withSeconds: bool = False
    type_name: ClassVar[str] = SCHEDULE_TYPES[0]

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str, info: Any) -> str:
        with_seconds = bool(info.data.get("withSeconds")) if info.data else False
        if not croniter.is_valid(value, second_at_beginning=with_seconds):
            raise ValueError(f"invalid cron expression '{value}'")
        return value

    def next_after(self, moment: datetime) -> datetime:
        local = moment.astimezone(self.zone)
        following: datetime = croniter(self.cron, local, second_at_beginning=self.withSeconds).get_next(datetime)
        return following

    def previous_before(self, moment: datetime) -> datetime:
        local = moment.astimezone(self.zone)
        earlier: datetime = croniter(self.cron, local, second_at_beginning=self.withSeconds).get_prev(datetime)
        return earlier


class ScheduleOnDates(_Timed):
    type: Literal["io.kestra.plugin.core.trigger.ScheduleOnDates"]
    dates: list[datetime] = Field(min_length=1)
    type_name: ClassVar[str] = DATES_TYPES[0]

    def _aware(self) -> list[datetime]:
        return sorted(d if d.tzinfo else d.replace(tzinfo=self.zone) for d in self.dates)

    def next_after(self, moment: datetime) -> datetime | None:
        return next((d for d in self._aware() if d > moment), None)

    def previous_before(self, moment: datetime) -> datetime | None:
        earlier = [d for d in self._aware() if d < moment]
        return earlier[-1] if earlier else None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _kind(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    if kind in SCHEDULE_TYPES:
        return "Schedule"
    if kind in DATES_TYPES:
        return "ScheduleOnDates"
    return "other"


# Flow.triggers: the two schedule types validated strictly (errors name the field), anything else kept as written.
AnyTrigger = Annotated[
    Union[  # noqa: UP007
        Annotated[Schedule, Tag("Schedule")],
        Annotated[ScheduleOnDates, Tag("ScheduleOnDates")],
        Annotated[dict[str, Any], Tag("other")],
    ],
    Discriminator(_kind),
]
TimedTrigger = Schedule | ScheduleOnDates

__all__ = ["AnyTrigger", "Schedule", "ScheduleOnDates", "TimedTrigger", "SCHEDULE_TYPES", "DATES_TYPES"]
