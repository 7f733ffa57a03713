"""Kestra's log levels, lowest first: what a task's `logLevel` and a log query's minimum level compare against."""

from __future__ import annotations

from typing import Literal

LogLevel = Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]
LEVELS: tuple[LogLevel, ...] = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")
_RANK = {level: index for index, level in enumerate(LEVELS)} | {"WARNING": 3}


def rank(level: str) -> int:
    """0 for TRACE up to 4 for ERROR; an unknown level counts as INFO."""
    return _RANK.get(level.upper(), 2)


def at_least(level: str, minimum: str | None) -> bool:
    """Whether a line at `level` is kept by a `minimum` (None keeps everything)."""
    return minimum is None or rank(level) >= rank(minimum)


def from_(minimum: str) -> list[str]:
    """The levels a `minimum` keeps, for a query."""
    return [level for level in LEVELS if rank(level) >= rank(minimum)]


__all__ = ["LEVELS", "LogLevel", "at_least", "from_", "rank"]
