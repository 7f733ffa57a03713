"""Task runners. `runner_for(type)` imports a runner only when a task asks for it (optional dependencies)."""

from __future__ import annotations

import importlib
from typing import Any

from runners.base import CommandSpec, LogSink, RunControl, RunnerError, RunResult, TaskRunner

_RUNNERS: dict[str, tuple[str, str, str]] = {
    # type name -> (module, class, pip extra)
    "io.kestra.plugin.core.runner.Process": ("runners.process", "ProcessRunner", ""),
    "io.kestra.plugin.scripts.runner.docker.Docker": ("runners.docker", "DockerRunner", "docker"),
    "io.kestra.plugin.ee.aws.runner.Batch": ("runners.aws_batch", "AwsBatchRunner", "aws"),
    "io.kestra.plugin.ee.gcp.runner.Batch": ("runners.gcp_batch", "GcpBatchRunner", "gcp"),
}
ALIASES = {
    "process": "io.kestra.plugin.core.runner.Process",
    "Process": "io.kestra.plugin.core.runner.Process",
    "docker": "io.kestra.plugin.scripts.runner.docker.Docker",
    "Docker": "io.kestra.plugin.scripts.runner.docker.Docker",
    "aws_batch": "io.kestra.plugin.ee.aws.runner.Batch",
    "gcp_batch": "io.kestra.plugin.ee.gcp.runner.Batch",
}


def canonical(type_name: str) -> str:
    return ALIASES.get(type_name, type_name)


def runner_for(type_name: str, properties: dict[str, Any] | None = None) -> TaskRunner:
    name = canonical(type_name)
    if name not in _RUNNERS:
        known = ", ".join(sorted({*_RUNNERS, *ALIASES}))
        raise RunnerError(f"Unknown task runner type '{type_name}': known types are {known}")
    module_name, class_name, extra = _RUNNERS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise RunnerError(f"Task runner '{type_name}' is not implemented in this version of Celestra") from exc
        hint = f" (pip install 'celestra[{extra}]')" if extra else ""
        raise RunnerError(f"Task runner '{type_name}' is not available: {exc}{hint}") from exc
    except ImportError as exc:
        hint = f" (pip install 'celestra[{extra}]')" if extra else ""
        raise RunnerError(f"Task runner '{type_name}' is not available: {exc}{hint}") from exc
    runner_class = getattr(module, class_name)
    return runner_class(**(properties or {}))  # type: ignore[no-any-return]


__all__ = ["CommandSpec", "LogSink", "RunControl", "RunResult", "RunnerError", "TaskRunner", "runner_for", "canonical"]
