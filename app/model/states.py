"""Execution and task-run states, named as Kestra names them.

The whole vocabulary is kept, also the states no Celestra engine path produces yet (QUEUED, RETRIED, SKIPPED):
flows name them in conditions (`ExecutionStatus: in: [...]`) as they do for Kestra.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    CREATED = "CREATED"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    RETRYING = "RETRYING"
    RETRIED = "RETRIED"
    SUCCESS = "SUCCESS"
    WARNING = "WARNING"
    FAILED = "FAILED"
    KILLING = "KILLING"
    KILLED = "KILLED"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL

    @property
    def failed(self) -> bool:
        return self in (State.FAILED, State.KILLED)


TERMINAL = frozenset(
    {State.SUCCESS, State.WARNING, State.FAILED, State.KILLED, State.CANCELLED, State.SKIPPED, State.RETRIED}
)

# Ordering used to fold children states into a parent's: the worst one wins.
_SEVERITY = {
    State.SUCCESS: 0,
    State.SKIPPED: 0,
    State.RETRIED: 0,
    State.CANCELLED: 1,
    State.WARNING: 2,
    State.FAILED: 3,
    State.KILLED: 4,
}


def worst(states: list[State], default: State = State.SUCCESS) -> State:
    """The most severe of terminal states (KILLED > FAILED > WARNING > SUCCESS)."""
    result = default
    for state in states:
        if _SEVERITY.get(state, 0) > _SEVERITY.get(result, 0):
            result = state
    return result
