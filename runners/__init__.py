"""Task runners, found through the `celestra.runners` entry points (type names and aliases, see pyproject.toml).

A runner is imported only when a task asks for it: its client library (docker, boto3, google-cloud-*) is an
optional extra, and a missing one is an error naming the extra to install.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from runners.base import CommandSpec, LogSink, RunControl, RunnerError, RunnerPolicy, RunResult, TaskRunner

GROUP = "celestra.runners"


@lru_cache(maxsize=1)
def registered() -> dict[str, EntryPoint]:
    """Every runner name (Kestra type names and short aliases) to its entry point; read once per process (reading
    the installed distributions' metadata costs milliseconds, and a script task asks for its runner every run)."""
    return {entry.name: entry for entry in entry_points(group=GROUP)}


def runner_class(type_name: str) -> type[TaskRunner]:
    entries = registered()
    entry = entries.get(type_name)
    if entry is None:
        known = ", ".join(sorted(entries))
        raise RunnerError(f"Unknown task runner type '{type_name}': known types are {known}")
    dist = entry.dist.name if entry.dist is not None else "celestra"
    hint = f" (pip install '{dist}[{','.join(entry.extras)}]')" if entry.extras else ""
    try:
        loaded = entry.load()
    except ModuleNotFoundError as exc:
        if exc.name == entry.module:
            raise RunnerError(f"Task runner '{type_name}' is not implemented in this version of Celestra") from exc
        raise RunnerError(f"Task runner '{type_name}' is not available: {exc}{hint}") from exc
    except ImportError as exc:
        raise RunnerError(f"Task runner '{type_name}' is not available: {exc}{hint}") from exc
    if not (isinstance(loaded, type) and issubclass(loaded, TaskRunner)):
        raise RunnerError(f"Task runner '{type_name}' ({entry.value}) is not a TaskRunner subclass")
    return loaded


def runner_for(type_name: str, properties: dict[str, Any] | None = None,
               policy: RunnerPolicy | None = None) -> TaskRunner:
    """A runner of this type with these (rendered) properties, under what the worker's operator allows."""
    runner = runner_class(type_name)(**(properties or {}))
    runner.policy = policy or RunnerPolicy()
    runner.check_policy()
    return runner


__all__ = ["CommandSpec", "LogSink", "RunControl", "RunResult", "RunnerError", "RunnerPolicy", "TaskRunner",
           "registered", "runner_class", "runner_for"]
