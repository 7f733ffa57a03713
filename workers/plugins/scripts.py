"""Scripting tasks (Python, Shell, Node; Script and Commands) handing their command to a task runner.

The worker prepares a fresh working directory (input files, namespace files, the script), the runner runs the
command and streams its lines, and the worker turns `::{"outputs": ...}::` lines into outputs and uploads output
files to internal storage.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app import runtime
from app.model.flow import NamespaceFiles
from app.model.inputs.values import format_duration
from runners import CommandSpec, RunControl, RunnerError, RunnerPolicy, runner_for
from workers import files
from workers.plugin_api import RunContext, RunnableTask, TaskFailure, TaskKilled

OUTPUT_MARKER = "::"
TAIL_LINES = 10  # last lines of stderr/stdout quoted in a failure message


def _no_windows(value: str) -> str:
    if value == "WINDOWS":
        raise ValueError("targetOS WINDOWS is not supported yet: the commands run with a POSIX shell on Linux")
    return value


class TaskRunnerRef(BaseModel):
    """`taskRunner: {type: ..., <runner properties>}`; properties are checked by the runner itself."""

    model_config = ConfigDict(extra="allow")
    type: str


class ScriptTask(RunnableTask):
    language: ClassVar[str] = "shell"
    default_image: ClassVar[str] = "ubuntu"

    beforeCommands: list[str] = Field(default_factory=list)
    interpreter: list[str] = Field(default_factory=lambda: ["/bin/sh", "-c"])
    env: dict[str, str | int | float | bool] = Field(default_factory=dict)
    containerImage: str | None = None
    inputFiles: dict[str, str] | str | None = None
    namespaceFiles: NamespaceFiles | None = None
    outputFiles: list[str] = Field(default_factory=list)
    warningOnStdErr: bool = True
    failFast: bool = True
    taskRunner: TaskRunnerRef | None = None
    # LINUX and AUTO are the same here: every runner starts the commands on Linux (a process, a container).
    targetOS: Annotated[Literal["LINUX", "WINDOWS", "AUTO"], AfterValidator(_no_windows)] = Field(
        "AUTO", description="LINUX or AUTO: the commands run with a POSIX shell; WINDOWS is refused.")

    def main_lines(self, ctx: RunContext, folder: Path, paths: dict[str, str]) -> list[str]:
        """The command lines; `paths` are workingDir/outputDir as the command sees them (inside a container)."""
        raise NotImplementedError

    def run(self, ctx: RunContext) -> dict[str, Any]:
        if ctx.working_dir is not None:  # inside a WorkingDirectory: its folder, shared with the other children
            return self._run_in(ctx, ctx.working_dir)
        folder = Path(tempfile.mkdtemp(prefix="celestra-script-"))
        try:
            return self._run_in(ctx, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)  # also after a failure, kill or timeout

    def _run_in(self, ctx: RunContext, folder: Path) -> dict[str, Any]:
        settings = runtime.settings()
        runner_ref = self.taskRunner or TaskRunnerRef(type=settings.default_task_runner)
        # Rendered like every task property: runner credentials and ARNs come from `{{ secret(...) }}` and vars.
        properties = ctx.render(runner_ref.model_dump(exclude={"type"}))
        try:
            policy = RunnerPolicy(allow_volumes=settings.docker_volumes_enabled)
            if settings.script_env_inherited is not None:
                policy = replace(policy, inherited_env=tuple(settings.script_env_inherited))
            runner = runner_for(runner_ref.type, properties, policy)
        except RunnerError as exc:
            raise TaskFailure(str(exc)) from exc
        workdir = getattr(runner, "container_workdir", None) or str(folder)
        paths = {"workingDir": workdir, "outputDir": f"{workdir}/_outputs"}
        files.stage(ctx, folder, self.inputFiles, self.namespaceFiles, paths)
        lines = [ctx.render_str(line, paths) for line in self.beforeCommands]
        lines += self.main_lines(ctx, folder, paths)
        if self.failFast and self.interpreter[:1] in (["/bin/sh"], ["sh"], ["/bin/bash"], ["bash"]):
            lines.insert(0, "set -e")
        env = {str(k): ctx.render_str(_env_text(v), paths) for k, v in self.env.items()}
        env.update({"WORKING_DIR": paths["workingDir"], "OUTPUT_DIR": paths["outputDir"]})
        spec = CommandSpec(
            command=[*self.interpreter, "\n".join(lines)], working_dir=folder, env=env,
            output_files=[ctx.render_str(p, paths) for p in self.outputFiles],
            timeout=self.timeout.total_seconds() if self.timeout else None,
            container_image=ctx.render_str(self.containerImage or self.default_image, paths),
            labels=ctx.attempt.labels, name=ctx.attempt.name,
        )
        collector = _LineCollector(ctx)
        control = RunControl(kill=ctx.kill_event, on_external_id=ctx.set_external_id,
                             logged_until=lambda: _logged_until(ctx), replayed=collector.replayed)
        try:
            result = runner.run(spec, collector, control)
        except RunnerError as exc:
            raise TaskFailure(str(exc)) from exc
        if result.timed_out:
            limit = format_duration(self.timeout) if self.timeout else "its timeout"
            raise TaskFailure(f"Task '{self.id}' timed out after {limit}")
        if result.killed:
            raise TaskKilled("killed")
        outputs: dict[str, Any] = {"exitCode": result.exit_code, "vars": collector.outputs}
        if collector.metrics:
            outputs["metrics"] = collector.metrics
        outputs["outputFiles"] = {name: ctx.store_output(name, path.read_bytes())
                                  for name, path in result.output_files.items()}
        if result.exit_code != 0:
            tail = "\n".join(collector.tail)
            raise TaskFailure(f"Command failed with exit code {result.exit_code}" + (f":\n{tail}" if tail else ""))
        if collector.stderr_lines and self.warningOnStdErr:
            ctx.warning = True
        return outputs


def _env_text(value: str | int | float | bool) -> str:
    """Environment values are text; YAML numbers and booleans are written the way Kestra writes them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _logged_until(ctx: RunContext) -> datetime | None:
    """How far this task run's earlier attempts logged the command a runner takes over (see RunControl)."""
    execution_id, task_run_id = ctx.attempt.labels.get("celestra.execution"), ctx.attempt.labels.get("celestra.taskrun")
    if not (execution_id and task_run_id):
        return None
    return runtime.store().logged_until(execution_id, task_run_id)


class _LineCollector:
    """The runner's sink: log lines as they come, outputs and metrics from Kestra's `::{...}::` lines."""

    def __init__(self, ctx: RunContext):
        self.ctx = ctx
        self.outputs: dict[str, Any] = {}
        self.metrics: list[dict[str, Any]] = []
        self.tail: list[str] = []
        self.stderr_lines = 0

    def __call__(self, line: str, stream: str, logged: bool = False) -> None:
        stripped = line.strip()
        if stripped.startswith(OUTPUT_MARKER) and stripped.endswith(OUTPUT_MARKER) and len(stripped) > 4:
            try:
                payload = json.loads(stripped[2:-2])
            except ValueError:
                payload = None
            if isinstance(payload, dict):
                self._structured(payload, logged)
                return
        if stream == "stderr":
            self.stderr_lines += 1
        self.tail = [*self.tail[-(TAIL_LINES - 1):], line]
        if not logged:
            self.ctx.log("ERROR" if stream == "stderr" else "INFO", line)

    def replayed(self, line: str, stream: str) -> None:
        """A line an earlier attempt already logged (a runner took its command over): its outputs, metrics, stderr
        and tail count for this attempt, its log rows are not written twice."""
        self(line, stream, logged=True)

    def _structured(self, payload: dict[str, Any], logged: bool) -> None:
        self.outputs.update(payload.get("outputs") or {})
        self.metrics.extend(payload.get("metrics") or [])
        for entry in [] if logged else payload.get("logs") or []:
            self.ctx.log(str(entry.get("level", "INFO")).upper(), str(entry.get("message", "")))


class _CommandsTask(ScriptTask):
    commands: list[str] = Field(min_length=1)

    def main_lines(self, ctx: RunContext, folder: Path, paths: dict[str, str]) -> list[str]:
        return [ctx.render_str(c, paths) for c in self.commands]


class _ScriptTask(ScriptTask):
    script: str
    script_suffix: ClassVar[str] = ".sh"
    run_with: ClassVar[str] = "/bin/sh"

    def main_lines(self, ctx: RunContext, folder: Path, paths: dict[str, str]) -> list[str]:
        script = folder / f"script_{self.id}{self.script_suffix}"
        script.write_text(ctx.render_str(self.script, paths))
        return [f"{self.run_with} {script.name}"]


class PythonCommands(_CommandsTask):
    type: Literal["io.kestra.plugin.scripts.python.Commands", "python.Commands"]
    default_image = "python:3.11-slim"


class PythonScript(_ScriptTask):
    type: Literal["io.kestra.plugin.scripts.python.Script", "python.Script"]
    default_image = "python:3.11-slim"
    script_suffix = ".py"
    run_with = "python"


class ShellCommands(_CommandsTask):
    type: Literal["io.kestra.plugin.scripts.shell.Commands", "shell.Commands"]


class ShellScript(_ScriptTask):
    type: Literal["io.kestra.plugin.scripts.shell.Script", "shell.Script"]


class NodeCommands(_CommandsTask):
    type: Literal["io.kestra.plugin.scripts.node.Commands", "node.Commands"]
    default_image = "node"


class NodeScript(_ScriptTask):
    type: Literal["io.kestra.plugin.scripts.node.Script", "node.Script"]
    default_image = "node"
    script_suffix = ".js"
    run_with = "node"


TASKS: list[type[RunnableTask]] = [  # the `scripts` family (pyproject.toml)
    PythonCommands, PythonScript, ShellCommands, ShellScript, NodeCommands, NodeScript,
]
