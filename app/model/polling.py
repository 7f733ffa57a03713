"""Polling triggers: a flow trigger that asks something outside (a database, an HTTP endpoint, a folder) every
`interval` and starts one execution when the answer says so.

The server decides when each one is due (app/services/polling.py); the asking runs as a Celery task on a worker of
the trigger's group (workers/polling.py), because that is where the database or the folder can be reached. A family
registers its polling trigger classes next to its task classes (the `celestra.tasks` entry points); the registry
binds them into `Flow.triggers`. A class implements `evaluate`, which returns a `Polled`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.model.flow import Duration, WorkerGroup
from app.model.schedule_conditions import ScheduleCondition
from app.model.states import State


@dataclass(frozen=True)
class Polled:
    """What one evaluation found."""

    summary: str  # one line for `celestra triggers`: "3 rows", "HTTP 503: condition false", "2 new files"
    variables: dict[str, Any] | None = None  # `{{ trigger.* }}` of the execution to start; None: nothing fires
    state: dict[str, Any] | None = None  # kept for the next evaluation (e.g. the files already seen); None: as is


class PollingTrigger(BaseModel):
    """Base of every polling trigger: the properties Kestra's polling triggers share."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$")
    type: str
    description: str | None = None
    disabled: bool = False
    interval: Duration = Field(timedelta(seconds=60), description="Time between two evaluations.")
    conditions: list[ScheduleCondition] = Field(
        default_factory=list, description="Tested before each evaluation with `trigger.date` = now; any false "
        "skips it.")
    stopAfter: list[State] = Field(
        default_factory=list, description="Switch the trigger off once an execution it started ends in one of these "
        "states.")
    workerGroup: WorkerGroup | None = Field(
        None, description="The worker group that evaluates it (else the flow's, then the namespace default).")

    @field_validator("interval")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("interval must be longer than zero")
        return value

    def evaluate(self, ctx: Any, state: dict[str, Any]) -> Polled:
        """Ask once, on the worker; `ctx` is the worker's RunContext (rendering with `secret()`, storage, kill
        event set on the evaluation timeout), `state` what the previous evaluation kept."""
        raise NotImplementedError(f"{type(self).__name__} does not implement evaluate()")


__all__ = ["Polled", "PollingTrigger"]
