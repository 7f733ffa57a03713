"""What a task plugin sees while it runs: rendering, logging, storage, kill signal."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from app import templating


class LogSink(Protocol):
    def __call__(self, level: str, message: str) -> None: ...


@dataclass
class RunContext:
    """One attempt of one task run, as the plugin sees it."""

    variables: dict[str, Any]
    log: LogSink
    storage: Any  # app.storage.Storage
    kill_event: threading.Event = field(default_factory=threading.Event)
    working_dir: Path | None = None
    kv: Any = None  # app.kv.KVStore-like: get/put/delete(namespace, key)
    set_labels: Callable[[dict[str, str]], None] | None = None
    set_state: Callable[[str], None] | None = None  # Exit task: end the execution in a given state
    set_external_id: Callable[[str], None] | None = None  # a runner's container / job / process id
    warning: bool = False  # the task succeeded with warnings (e.g. it wrote to stderr)
    extra: dict[str, Any] = field(default_factory=dict)

    def render(self, value: Any, extra: Mapping[str, Any] | None = None) -> Any:
        scope = {**self.variables, **extra} if extra else self.variables
        return templating.render_value(value, scope)

    def render_str_with(self, value: Any, extra: Mapping[str, Any]) -> str:
        rendered = self.render(value, extra)
        return rendered if isinstance(rendered, str) else templating.render("{{ v }}", {"v": rendered})

    def render_str(self, value: Any) -> str:
        rendered = self.render(value)
        return rendered if isinstance(rendered, str) else templating.render("{{ v }}", {"v": rendered})

    @property
    def namespace(self) -> str:
        return str(self.variables["flow"]["namespace"])

    def sleep(self, seconds: float) -> bool:
        """Wait `seconds`; True when the task was killed meanwhile."""
        return self.kill_event.wait(seconds)
