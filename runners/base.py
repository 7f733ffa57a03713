"""The task-runner contract: run one command spec somewhere, stream its lines, bring its files back.

A runner knows nothing of flows. The worker prepares a local working directory (script, input and namespace
files), hands over a `CommandSpec`, and gets a `RunResult`. One method to implement: `run`.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

Stream = Literal["stdout", "stderr"]


class LogSink(Protocol):
    def __call__(self, line: str, stream: Stream) -> None: ...


class RunnerError(Exception):
    """The runner could not run the command at all (missing image, unreachable daemon, ...)."""


@dataclass
class CommandSpec:
    command: list[str]  # argv, e.g. ["/bin/sh", "-c", "set -e\npython main.py"]
    working_dir: Path  # holds the inputs; output files are collected from it
    env: dict[str, str] = field(default_factory=dict)
    output_files: list[str] = field(default_factory=list)  # globs relative to working_dir
    output_dir: str = "_outputs"  # every file written there is an output too
    timeout: float | None = None  # seconds
    container_image: str | None = None
    resources: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # execution id, task run id: to find what we started
    name: str = "celestra-task"  # deterministic per attempt


@dataclass
class RunResult:
    exit_code: int
    external_id: str | None = None
    output_files: dict[str, Path] = field(default_factory=dict)  # name relative to working_dir -> local file
    timed_out: bool = False
    killed: bool = False


# What a local command inherits of its worker's environment unless the operator says otherwise: enough to find
# programs and speak the locale, nothing that holds a credential.
DEFAULT_INHERITED_ENV = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ",
                         "TMPDIR", "TEMP", "TMP", "TERM")
# Never handed to a command, whatever the allow-list says: the worker's own configuration and its secrets.
NEVER_INHERITED_PREFIXES = ("CELESTRA_", "SECRET_")


@dataclass(frozen=True)
class RunnerPolicy:
    """What the operator of the worker allows its runners, whatever a flow asks for."""

    allow_volumes: bool = False  # Docker `volumes` reach the host's files
    inherited_env: tuple[str, ...] = DEFAULT_INHERITED_ENV  # worker variables a local command may see

    def inherited(self, environ: Mapping[str, str]) -> dict[str, str]:
        """The part of `environ` a local command starts with (the task's own `env` goes on top)."""
        return {name: environ[name] for name in self.inherited_env
                if name in environ and not name.startswith(NEVER_INHERITED_PREFIXES)}


def _nothing_logged() -> datetime | None:
    return None


def _drop(line: str, stream: Stream) -> None:
    return None


@dataclass
class RunControl:
    """How the worker talks to a running command: a kill request, where to record the external id, and how far the
    output of a command taken over from an earlier attempt is already logged."""

    kill: threading.Event = field(default_factory=threading.Event)
    on_external_id: Callable[[str], None] = lambda external_id: None
    # A takeover: a runner that finds the command an earlier attempt started (its worker died; supports_resume)
    # follows it, and reads its output again from the start. `logged_until()` says when the last line that attempt
    # delivered was stored in the task's logs (UTC, the worker's clock; None: nothing was). Lines the command printed
    # up to that moment go to `replayed`, not to the sink: each line is logged once, and the worker still reads the
    # outputs they carry. Called only on a takeover (it may query the store), before any line is delivered.
    logged_until: Callable[[], datetime | None] = _nothing_logged
    replayed: LogSink = _drop


class TaskRunner(ABC):
    """Runs a command spec to completion. Every output line goes to `sink` as it arrives."""

    supports_resume: ClassVar[bool] = False
    policy: RunnerPolicy = RunnerPolicy()  # set by runners.runner_for from the worker's settings

    @abstractmethod
    def run(self, spec: CommandSpec, sink: LogSink, control: RunControl) -> RunResult: ...

    def check_policy(self) -> None:
        """Raise RunnerError when the properties ask for more than `policy` allows (runner_for calls it, so a flow
        fails before anything starts). Runners whose properties can reach the host override it."""
        return None

    def resume(self, external_id: str, spec: CommandSpec, sink: LogSink, control: RunControl) -> RunResult:
        """Follow a command started by a worker that died (only runners with supports_resume), honouring
        `control.logged_until` as a takeover in `run` does."""
        raise NotImplementedError(f"{type(self).__name__} cannot resume a command it did not start")


def collect_outputs(spec: CommandSpec) -> dict[str, Path]:
    """Files matching the spec's globs (named relative to working_dir) and everything under its output dir."""
    root = spec.working_dir
    found: dict[str, Path] = {}
    for pattern in spec.output_files:
        for path in sorted(root.glob(pattern)):
            if path.is_file():
                found[str(path.relative_to(root))] = path
    output_dir = root / spec.output_dir
    for path in sorted(output_dir.glob("**/*")):  # named relative to OUTPUT_DIR, as Kestra names them
        if path.is_file():
            found[str(path.relative_to(output_dir))] = path
    return found
