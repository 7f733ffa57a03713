"""Executions and task runs as the engine handles them (plain dataclasses: they are on the hot path)."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.model.states import State

_ALPHABET = string.ascii_letters + string.digits


_ID_SPACE = len(_ALPHABET) ** 22


def new_id() -> str:
    """A 22-character base62 id, the shape Kestra uses: one draw from the system's randomness, written in base 62
    (a draw per character cost a tenth of a millisecond, and a step makes several)."""
    number, digits = secrets.randbelow(_ID_SPACE), []
    for _ in range(22):
        number, digit = divmod(number, 62)
        digits.append(_ALPHABET[digit])
    return "".join(digits)


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


@dataclass
class Attempt:
    state: State
    start: datetime | None = None
    end: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state.value, "startDate": iso(self.start), "endDate": iso(self.end)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Attempt:
        return cls(
            State(data["state"]),
            datetime.fromisoformat(data["startDate"]) if data.get("startDate") else None,
            datetime.fromisoformat(data["endDate"]) if data.get("endDate") else None,
        )


@dataclass
class TaskRun:
    id: str
    execution_id: str
    task_id: str
    parent_id: str | None = None
    value: str | None = None
    values: list[str] = field(default_factory=list)  # loop values from the outermost loop inwards
    iteration: int | None = None
    state: State = State.CREATED
    attempts: list[Attempt] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    worker_group: str | None = None
    worker: str | None = None
    worker_pid: int | None = None  # the process of `worker` that claimed it
    claim_token: str | None = None  # written by the claim that won
    external_id: str | None = None
    error: str | None = None
    created: datetime = field(default_factory=now)
    started: datetime | None = None
    ended: datetime | None = None
    next_at: datetime | None = None  # when a timer (retry delay, pause) is due
    sent_at: datetime | None = None  # when its message was last sent to a worker group's queue
    sent_by: int | None = None  # the process that sent it
    row_version: int = 0  # of the stored row this copy was read from (app/store/database.py: conditional writes)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "taskId": self.task_id,
            "parentTaskRunId": self.parent_id,
            "value": self.value,
            "state": self.state.value,
            "attempts": [a.to_json() for a in self.attempts],
            "workerGroup": self.worker_group,
            "worker": self.worker,
            "externalId": self.external_id,
            "outputs": self.outputs,
            "error": self.error,
            "startDate": iso(self.started),
            "endDate": iso(self.ended),
        }


@dataclass
class Execution:
    id: str
    namespace: str
    flow_id: str
    flow_revision: int | None
    flow_source: str | None  # None when loaded without it: events.flow_of fetches it once per process
    state: State = State.CREATED
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    parent_execution_id: str | None = None
    parent_task_run_id: str | None = None
    trigger: dict[str, Any] | None = None  # set when a trigger fired it: `{{ trigger.date }}` and the like
    trigger_key: str | None = None  # the trigger event it was created for: stored once per flow
    # Its end was offered to the flow triggers watching it (app/engine/flow_triggers.py).
    downstream_checked: bool = False
    error: str | None = None
    created: datetime = field(default_factory=now)
    started: datetime | None = None
    ended: datetime | None = None
    version: int = 0  # bumped by every locked write of its task runs (app/engine/memory.py)
    restarts: int = 0  # how many times it was restarted (app/engine/restart.py)
    # A retry as a new execution (retry behavior CREATE_NEW_EXECUTION, app/engine/retried.py): the first
    # execution of the chain, which try this is (1 for the first), and when the first was created.
    original_id: str | None = None
    retry_attempt: int = 1
    original_created: datetime | None = None
    sla_due: datetime | None = None  # when its next MAX_DURATION sla falls due (app/engine/sla.py)
    final_state: State | None = None  # the state it ends in, while its afterExecution tasks run
    task_runs: list[TaskRun] = field(default_factory=list)
    secret_inputs: frozenset[str] = frozenset()  # SECRET inputs: never printed

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "namespace": self.namespace,
            "flowId": self.flow_id,
            "flowRevision": self.flow_revision,
            "state": self.state.value,
            "inputs": {k: ("********" if k in self.secret_inputs and v is not None else v)
                       for k, v in self.inputs.items()},
            "outputs": self.outputs,
            "labels": self.labels,
            "parentExecutionId": self.parent_execution_id,
            "originalId": self.original_id or self.id,
            "trigger": self.trigger,
            "error": self.error,
            "startDate": iso(self.started or self.created),
            "endDate": iso(self.ended),
            "metadata": {"attemptNumber": self.restarts + 1},
            "taskRuns": [run.to_json() for run in self.task_runs],
        }
