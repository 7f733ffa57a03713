"""The plugin API: everything a task plugin may use, in one place.

A task plugin is one class: a subclass of `RunnableTask` whose fields are its properties (a pydantic model: an
unknown or mistyped property is a validation error naming the file and line) and whose `type` is a `Literal` of its
Kestra names. The worker hands `run` a `RunContext` for one attempt; `run` returns the task's outputs. Register the
class (or a list of classes) under the `celestra.tasks` entry points of its distribution:

    [project.entry-points."celestra.tasks"]
    hello = "celestra_hello:HelloTask"

Properties arrive as written in the flow; `ctx.render(...)` / `ctx.render_str(...)` render one with the execution's
variables (inputs, outputs, vars, `secret()` resolved on the worker), so a plugin renders exactly what it reads and
when it reads it, as Kestra's `runContext.render` does. Raise `TaskFailure(message)` to fail the task run with a
message (no traceback), `TaskKilled` when `ctx.killed` tells you to stop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from app import templating
from app.errors import TaskFailure, TaskKilled
from app.model.flow import Duration, Task
from app.model.records import Execution
from app.store.storage import Storage

__all__ = ["AttemptInfo", "Duration", "KeyValueStore", "ExecutionReader", "LogSink", "RunContext", "RunnableTask",
           "TaskFailure", "TaskKilled"]


class LogSink(Protocol):
    def __call__(self, level: str, message: str) -> None: ...


class KeyValueStore(Protocol):
    """Kestra's KV store, by namespace."""

    def get(self, namespace: str, key: str) -> Any: ...
    def put(self, namespace: str, key: str, value: Any, ttl: timedelta | None = None) -> None: ...
    def delete(self, namespace: str, key: str) -> bool: ...
    def keys(self, namespace: str, prefix: str = "") -> list[str]: ...


class ExecutionReader(Protocol):
    """Stored executions and their logs (log.Fetch, the execution-summary notifications): the caller checks that
    the task may read the execution it asks for."""

    def flow_of(self, execution_id: str) -> tuple[str, str] | None: ...  # (namespace, flow id); None: no such one
    def rows(self, execution_id: str) -> list[dict[str, Any]]: ...  # its log lines, oldest first
    def execution(self, execution_id: str) -> Execution | None: ...  # with its task runs; None: no such one


@dataclass(frozen=True)
class AttemptInfo:
    """Names for what an attempt starts elsewhere (a container, a cloud job), deterministic per attempt so that a
    restarted worker finds what its predecessor started."""

    name: str  # e.g. celestra-<task run id>-<attempt>
    labels: dict[str, str]  # celestra.execution, celestra.taskrun, celestra.attempt


def _no_external_id(external_id: str) -> None:
    return None


@dataclass
class RunContext:
    """One attempt of one task run, as the plugin sees it."""

    variables: dict[str, Any]  # what templates see
    log: LogSink  # ctx.log("INFO", "..."): masked, filtered by the task's logLevel, streamed to the store
    storage: Storage  # internal storage (kestra:// URIs): get, open, put, list, delete
    kv: KeyValueStore
    attempt: AttemptInfo
    store_output: Callable[[str, bytes], str]  # a file of this task run into internal storage; returns its URI
    kill_event: threading.Event = field(default_factory=threading.Event)  # set on kill or timeout
    working_dir: Path | None = None  # the WorkingDirectory folder this task runs in, if any
    set_labels: Callable[[dict[str, str]], None] = lambda labels: None  # add labels to the execution
    set_state: Callable[[str], None] = lambda state: None  # end the execution in this state (Exit)
    # A runner's container / job / process id: stored at once, so cancel, timeout and a restart can find it.
    set_external_id: Callable[[str], None] = _no_external_id
    warning: bool = False  # set it: the task succeeded with warnings (e.g. it wrote to stderr)
    executions: ExecutionReader | None = None  # the store's executions and logs, where the worker has a store
    # Where store_output puts a file of this name (to stream one there instead); None: under this task run.
    output_uri: Callable[[str], str] | None = None

    def render(self, value: Any, extra: Mapping[str, Any] | None = None) -> Any:
        """Every string inside `value` rendered; `extra` adds variables (e.g. workingDir inside a container)."""
        scope = {**self.variables, **extra} if extra else self.variables
        return templating.render_value(value, scope)

    def render_str(self, value: Any, extra: Mapping[str, Any] | None = None) -> str:
        """Rendered, then as text (a number or list renders as Kestra prints it)."""
        rendered = self.render(value, extra)
        return rendered if isinstance(rendered, str) else templating.render("{{ v }}", {"v": rendered})

    @property
    def namespace(self) -> str:
        return str(self.variables["flow"]["namespace"])

    @property
    def killed(self) -> bool:
        return self.kill_event.is_set()

    def sleep(self, seconds: float) -> bool:
        """Wait `seconds`; True when the task was killed meanwhile."""
        return self.kill_event.wait(seconds)


class RunnableTask(Task):
    """Base of every task a worker runs. Subclasses declare their properties and implement `run`."""

    kind = "runnable"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} does not implement run()")
