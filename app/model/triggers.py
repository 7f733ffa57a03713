"""Flow triggers. Schedule and ScheduleOnDates are fired by `celestra server` (app/services/scheduler.py), Flow
triggers when a watched execution ends (app/engine/flow_triggers.py), polling triggers (app/model/polling.py) on a
worker of their group, Webhook triggers by the REST API (app/model/webhook.py). Other types are not evaluated yet,
so they are refused, saying so, unless `disabled: true` (then they are kept as written).

The fire dates are pure functions of the trigger and a time window, so they are tested without a clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal, Union, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from app.model.flow import Duration
from app.model.polling import PollingTrigger
from app.model.schedule_conditions import ScheduleCondition, conditions_hold
from app.model.states import State
from app.model.webhook import WEBHOOK_TYPES, WebhookTrigger

SCHEDULE_TYPES = ("io.kestra.plugin.core.trigger.Schedule", "io.kestra.core.models.triggers.types.Schedule")
DATES_TYPES = ("io.kestra.plugin.core.trigger.ScheduleOnDates",)
FLOW_TYPES = ("io.kestra.plugin.core.trigger.Flow", "io.kestra.core.models.triggers.types.Flow")
MATCH_LOOKAHEAD = 2000  # schedule dates searched for the next/previous one the conditions let fire
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
    conditions: list[ScheduleCondition] = Field(default_factory=list)

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

    def previous_before(self, moment: datetime) -> datetime | None:
        raise NotImplementedError

    def holds(self, date: datetime, scope: dict[str, Any]) -> bool:
        """Every condition holds for `date`; `scope` adds `flow` and functions such as `kv` to its dates."""
        if not self.conditions:
            return True
        dates = {**self.variables(date, self.previous_before(date), self.next_after(date))}
        return conditions_hold(self.conditions, {**scope, "trigger": dates, "schedule": dates}, self.zone)

    def matching(self, date: datetime, scope: dict[str, Any], forward: bool) -> datetime | None:
        """The nearest date after (or before) `date` that fires with the conditions: Kestra's `trigger.next` and
        `trigger.previous` under conditions. Bounded: no such date within MATCH_LOOKAHEAD schedule dates is None."""
        step = self.next_after if forward else self.previous_before
        moment = step(date)
        for _ in range(MATCH_LOOKAHEAD):
            if moment is None or self.holds(moment, scope):
                return moment
            moment = step(moment)
        return None

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


class _Condition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def matches(self, namespace: str, flow_id: str, state: State) -> bool:
        raise NotImplementedError


class ExecutionFlowCondition(_Condition):
    type: Literal["io.kestra.plugin.core.condition.ExecutionFlow",
                  "io.kestra.plugin.core.condition.ExecutionFlowCondition",
                  "io.kestra.core.models.conditions.types.ExecutionFlowCondition"]
    namespace: str
    flowId: str

    def matches(self, namespace: str, flow_id: str, state: State) -> bool:
        return (namespace, flow_id) == (self.namespace, self.flowId)


class ExecutionStatusCondition(_Condition):
    type: Literal["io.kestra.plugin.core.condition.ExecutionStatus",
                  "io.kestra.plugin.core.condition.ExecutionStatusCondition",
                  "io.kestra.core.models.conditions.types.ExecutionStatusCondition"]
    in_: list[State] = Field(default_factory=list, alias="in")
    notIn: list[State] = Field(default_factory=list)

    def matches(self, namespace: str, flow_id: str, state: State) -> bool:
        return (not self.in_ or state in self.in_) and state not in self.notIn


class ExecutionNamespaceCondition(_Condition):
    type: Literal["io.kestra.plugin.core.condition.ExecutionNamespace",
                  "io.kestra.plugin.core.condition.ExecutionNamespaceCondition",
                  "io.kestra.core.models.conditions.types.ExecutionNamespaceCondition"]
    namespace: str
    comparison: Literal["EQUALS", "PREFIX", "SUFFIX"] | None = None
    prefix: bool = False  # the older spelling of comparison: PREFIX

    def matches(self, namespace: str, flow_id: str, state: State) -> bool:
        comparison = self.comparison or ("PREFIX" if self.prefix else "EQUALS")
        if comparison == "PREFIX":
            return namespace == self.namespace or namespace.startswith(self.namespace + ".")
        if comparison == "SUFFIX":
            return namespace.endswith(self.namespace)
        return namespace == self.namespace


Condition = Annotated[ExecutionFlowCondition | ExecutionStatusCondition | ExecutionNamespaceCondition,
                      Field(discriminator="type")]


class FlowTrigger(BaseModel):
    """Starts this flow when an execution of another flow ends (or reaches one of `states`) and every condition
    holds. `inputs` are rendered in the ended execution's context: `{{ outputs.task.value }}`, `{{ trigger.* }}`."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$")
    type: Literal["io.kestra.plugin.core.trigger.Flow", "io.kestra.core.models.triggers.types.Flow"]
    description: str | None = None
    disabled: bool = False
    inputs: dict[str, Any] = Field(default_factory=dict)
    states: list[State] = Field(default_factory=lambda: [s for s in State if s.terminal])
    conditions: list[Condition] = Field(default_factory=list)
    preconditions: Any = None

    @field_validator("preconditions")
    @classmethod
    def _not_yet(cls, value: Any) -> Any:
        if value is not None:
            raise ValueError("preconditions are not supported yet: express them with `conditions`")
        return value

    def matches(self, namespace: str, flow_id: str, state: State) -> bool:
        return state in self.states and all(c.matches(namespace, flow_id, state) for c in self.conditions)


def _not_evaluated_yet(value: dict[str, Any]) -> dict[str, Any]:
    """A trigger nothing would ever fire is refused rather than accepted and ignored; disabled, it is harmless."""
    if value.get("disabled") is not True:
        raise ValueError(f"trigger type {value.get('type')!r} is not supported yet (supported: Schedule, "
                         "ScheduleOnDates, Flow, Webhook and the polling triggers `celestra plugins` lists); remove it "
                         "or set `disabled: true`")
    return value


def trigger_union(polling: Sequence[type[PollingTrigger]] = ()) -> Any:
    """The type of one entry of `Flow.triggers`: the supported types validated strictly (errors name the field),
    another type only when disabled. The registry binds it again with the installed families' polling triggers."""
    tags = {name: "Schedule" for name in SCHEDULE_TYPES} | {name: "ScheduleOnDates" for name in DATES_TYPES} | {
        name: "Flow" for name in FLOW_TYPES} | {name: "Webhook" for name in WEBHOOK_TYPES}
    members: list[Any] = [Annotated[Schedule, Tag("Schedule")], Annotated[ScheduleOnDates, Tag("ScheduleOnDates")],
                          Annotated[FlowTrigger, Tag("Flow")], Annotated[WebhookTrigger, Tag("Webhook")]]
    for cls in polling:
        names = get_args(cls.model_fields["type"].annotation)
        tags.update({name: names[0] for name in names})
        members.append(Annotated[cls, Tag(names[0])])
    members.append(Annotated[dict[str, Any], AfterValidator(_not_evaluated_yet), Tag("other")])

    def kind(value: Any) -> str:
        name = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
        return tags.get(name, "other") if isinstance(name, str) else "other"

    return Annotated[Union[tuple(members)], Discriminator(kind)]  # noqa: UP007


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


AnyTrigger = trigger_union()
TimedTrigger = Schedule | ScheduleOnDates

__all__ = ["AnyTrigger", "FlowTrigger", "Schedule", "ScheduleOnDates", "TimedTrigger", "SCHEDULE_TYPES", "DATES_TYPES",
           "trigger_union"]
