"""The error hierarchy users see. Each message names what is wrong and where."""

from __future__ import annotations


class CelestraError(Exception):
    """Base of every error Celestra raises on purpose."""


class FlowValidationError(CelestraError):
    """A flow that cannot be loaded: each problem names file, line, column and field."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class NotFoundError(CelestraError):
    """An execution, flow or file that does not exist."""


class TaskFailure(CelestraError):
    """Raised by a task plugin to fail its task run with a message (no traceback shown)."""


class TaskKilled(CelestraError):
    """Raised inside a task when its execution is killed or its timeout elapsed."""


class ConfigError(CelestraError):
    """Invalid settings or configuration file."""
