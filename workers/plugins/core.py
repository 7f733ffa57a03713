"""Core runnable tasks: logging, outputs, sleep, fail/exit, labels, key-value store, local files."""

from __future__ import annotations

import glob
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from app.model.inputs.values import InvalidValue, format_duration, parse_duration
from app.model.log_levels import LogLevel, at_least
from app.templating import TemplateError, is_truthy
from workers.plugin_api import Duration, RunContext, RunnableTask, TaskFailure, TaskKilled


class Log(RunnableTask):
    type: Literal["io.kestra.plugin.core.log.Log", "io.kestra.core.tasks.log.Log", "Log"]
    message: str | list[str]
    level: LogLevel = "INFO"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        messages = self.message if isinstance(self.message, list) else [self.message]
        for message in messages:
            ctx.log(self.level, ctx.render_str(message))
        return {}


class Fetch(RunnableTask):
    """The stored logs of an execution of this namespace (the current one unless `executionId` says), from `level`
    up, of the tasks `tasksId` (all when empty), into a file: one JSON object per line (also Ion text), as Kestra's
    LogEntry names its fields. Outputs `uri` and `size` (how many lines)."""

    type: Literal["io.kestra.plugin.core.log.Fetch", "io.kestra.core.tasks.log.Fetch", "Fetch"]
    namespace: str | None = None
    flowId: str | None = None
    executionId: str | None = None
    tasksId: list[str] = Field(default_factory=list)
    level: LogLevel = "INFO"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        v = ctx.variables
        execution_id = ctx.render_str(self.executionId).strip() if self.executionId else v["execution"]["id"]
        namespace = ctx.render_str(self.namespace).strip() if self.namespace else ctx.namespace
        flow_id = ctx.render_str(self.flowId).strip() if self.flowId else v["flow"]["id"]
        if namespace != ctx.namespace:
            raise TaskFailure(f"Cannot fetch the logs of namespace '{namespace}': a task reads only the logs of its "
                              f"own namespace '{ctx.namespace}'")
        if ctx.executions is None:
            raise TaskFailure("This worker has no store to read logs from")
        if ctx.executions.flow_of(execution_id) != (namespace, flow_id):
            raise TaskFailure(f"No execution '{execution_id}' of the flow {namespace}.{flow_id}")
        wanted = set(self.tasksId)
        lines = [json.dumps({
            "namespace": namespace, "flowId": flow_id, "taskId": row["task_id"], "executionId": execution_id,
            "taskRunId": row["task_run_id"], "attemptNumber": row["attempt"], "timestamp": row["timestamp"].isoformat(),
            "level": row["level"], "message": row["message"]}, separators=(",", ":"))
            for row in ctx.executions.rows(execution_id)
            if at_least(row["level"], self.level) and (not wanted or row["task_id"] in wanted)]
        uri = ctx.store_output("logs.ion", "".join(line + "\n" for line in lines).encode())
        return {"uri": uri, "size": len(lines)}


class Echo(RunnableTask):
    type: Literal["io.kestra.core.tasks.debugs.Echo", "io.kestra.plugin.core.debug.Echo", "Echo"]
    format: str
    level: LogLevel = "INFO"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        ctx.log(self.level, ctx.render_str(self.format))
        return {}


class Return(RunnableTask):
    type: Literal["io.kestra.plugin.core.debug.Return", "io.kestra.core.tasks.debugs.Return", "Return"]
    format: str | None = None

    def run(self, ctx: RunContext) -> dict[str, Any]:
        return {"value": ctx.render_str(self.format) if self.format is not None else None}


class OutputValues(RunnableTask):
    type: Literal[
        "io.kestra.plugin.core.output.OutputValues", "io.kestra.core.tasks.outputs.OutputValues", "OutputValues"
    ]
    values: dict[str, Any] = Field(default_factory=dict)

    def run(self, ctx: RunContext) -> dict[str, Any]:
        return {"values": ctx.render(self.values)}


class Sleep(RunnableTask):
    type: Literal["io.kestra.plugin.core.flow.Sleep", "io.kestra.core.tasks.flows.Sleep", "Sleep"]
    duration: Duration

    def run(self, ctx: RunContext) -> dict[str, Any]:
        if ctx.sleep(self.duration.total_seconds()):
            raise TaskKilled("Sleep interrupted")
        return {}


class Fail(RunnableTask):
    type: Literal["io.kestra.plugin.core.execution.Fail", "io.kestra.core.tasks.executions.Fail", "Fail"]
    condition: str | None = None
    errorMessage: str = "Task failure"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        if self.condition is None or is_truthy(ctx.render(self.condition)):
            raise TaskFailure(ctx.render_str(self.errorMessage))
        return {}


class Exit(RunnableTask):
    type: Literal["io.kestra.plugin.core.execution.Exit", "Exit"]
    state: Literal["SUCCESS", "WARNING", "KILLED", "FAILED", "CANCELLED", "CANCELED"] = Field(
        "SUCCESS", description="CANCELED is Kestra's newer spelling of CANCELLED.")
    condition: str | None = None

    def run(self, ctx: RunContext) -> dict[str, Any]:
        if self.condition is None or is_truthy(ctx.render(self.condition)):
            ctx.set_state("CANCELLED" if self.state == "CANCELED" else self.state)
        return {}


class Labels(RunnableTask):
    type: Literal["io.kestra.plugin.core.execution.Labels", "io.kestra.core.tasks.executions.Labels", "Labels"]
    labels: dict[str, Any] | list[dict[str, Any]] | str

    def run(self, ctx: RunContext) -> dict[str, Any]:
        rendered = ctx.render(self.labels)
        if isinstance(rendered, str):
            rendered = json.loads(rendered)
        if isinstance(rendered, list):
            rendered = {str(item["key"]): item["value"] for item in rendered}
        labels = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in rendered.items()}
        ctx.set_labels(labels)
        return {}


class Assert(RunnableTask):
    """Fails, saying how many, when a condition renders falsy (If's truth rules) or cannot be rendered."""

    type: Literal["io.kestra.plugin.core.execution.Assert", "Assert"]
    conditions: list[str]
    errorMessage: str | None = None

    def run(self, ctx: RunContext) -> dict[str, Any]:
        failed = 0
        for condition in self.conditions:
            try:
                holds = is_truthy(ctx.render_str(condition))
            except TemplateError as exc:
                ctx.log("ERROR", f"Assertion `{condition}` failed, failed to render `{exc}`")
                failed += 1
                continue
            if not holds:
                ctx.log("ERROR", f"Assertion `{condition}` failed!")
                failed += 1
        if failed:
            detail = f"\n{ctx.render_str(self.errorMessage)}" if self.errorMessage is not None else ""
            raise TaskFailure(f"{failed} assertion{'s' if failed > 1 else ''} failed!{detail}")
        return {}


KVType = Literal["STRING", "NUMBER", "BOOLEAN", "DATETIME", "DATE", "DURATION", "JSON"]


class KVSet(RunnableTask):
    type: Literal["io.kestra.plugin.core.kv.Set", "kv.Set"]
    key: str
    value: Any
    namespace: str | None = None
    overwrite: bool = True
    ttl: Duration | None = None
    kvType: KVType | None = None

    def run(self, ctx: RunContext) -> dict[str, Any]:
        namespace = ctx.render_str(self.namespace) if self.namespace else ctx.namespace
        key = ctx.render_str(self.key)
        if not self.overwrite and ctx.kv.get(namespace, key) is not None:
            raise TaskFailure(f"The key '{key}' already exists in the namespace '{namespace}'.")
        value = ctx.render(self.value)
        if self.kvType is not None and isinstance(value, str):
            value = _typed(value, self.kvType)
        ctx.kv.put(namespace, key, value, self.ttl)
        return {}


def _typed(text: str, kv_type: str) -> Any:
    """A rendered string as the value `kvType` names, as Kestra converts it (a string otherwise). Dates and
    durations are stored in their ISO-8601 form, which is what reading them back renders."""
    try:
        if kv_type == "NUMBER":
            number = json.loads(text)
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise ValueError("not a number")
            return number
        if kv_type == "BOOLEAN":
            return text.strip().lower() == "true"
        if kv_type in ("DATETIME", "DATE"):  # an instant: a date and time with its offset
            moment = datetime.fromisoformat(text.strip())
            if moment.tzinfo is None:
                raise ValueError("no time zone offset")
            return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
        if kv_type == "DURATION":
            return format_duration(parse_duration(text))
        if kv_type == "JSON":
            return json.loads(text)
    except (ValueError, InvalidValue) as exc:
        raise TaskFailure(f"kvType {kv_type}: {text!r} cannot be read as one ({exc})") from None
    return text


class KVGetKeys(RunnableTask):
    """The keys of a namespace (the flow's by default), optionally only those starting with `prefix`."""

    type: Literal["io.kestra.plugin.core.kv.GetKeys", "kv.GetKeys"]
    prefix: str | None = None
    namespace: str | None = None

    def run(self, ctx: RunContext) -> dict[str, Any]:
        namespace = ctx.render_str(self.namespace) if self.namespace else ctx.namespace
        return {"keys": ctx.kv.keys(namespace, ctx.render_str(self.prefix) if self.prefix else "")}


class KVGet(RunnableTask):
    type: Literal["io.kestra.plugin.core.kv.Get", "kv.Get"]
    key: str
    namespace: str | None = None
    errorOnMissing: bool = False

    def run(self, ctx: RunContext) -> dict[str, Any]:
        namespace = ctx.render_str(self.namespace) if self.namespace else ctx.namespace
        key = ctx.render_str(self.key)
        value = ctx.kv.get(namespace, key)
        if value is None and self.errorOnMissing:
            raise TaskFailure(f"The key '{key}' does not exist in the namespace '{namespace}'.")
        return {"value": value}


class KVDelete(RunnableTask):
    type: Literal["io.kestra.plugin.core.kv.Delete", "kv.Delete"]
    key: str
    namespace: str | None = None
    errorOnMissing: bool = False

    def run(self, ctx: RunContext) -> dict[str, Any]:
        namespace = ctx.render_str(self.namespace) if self.namespace else ctx.namespace
        key = ctx.render_str(self.key)
        deleted = ctx.kv.delete(namespace, key)
        if not deleted and self.errorOnMissing:
            raise TaskFailure(f"The key '{key}' does not exist in the namespace '{namespace}'.")
        return {"deleted": deleted}


class LocalFiles(RunnableTask):
    """Writes `inputs` into the working directory and uploads files matching `outputs` to internal storage."""

    type: Literal["io.kestra.plugin.core.storage.LocalFiles", "io.kestra.core.tasks.storages.LocalFiles", "LocalFiles"]
    inputs: dict[str, str] | str | None = None
    outputs: list[str] | None = None

    def run(self, ctx: RunContext) -> dict[str, Any]:
        if ctx.working_dir is None:
            raise TaskFailure("LocalFiles must run inside a WorkingDirectory task")
        root = ctx.working_dir
        files = ctx.render(self.inputs) or {}
        if isinstance(files, str):
            files = json.loads(files)
        for name, content in files.items():
            target = (root / name).resolve()
            if root.resolve() not in target.parents:
                raise TaskFailure(f"LocalFiles input {name!r} escapes the working directory")
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, str) and content.startswith("kestra://"):
                target.write_bytes(ctx.storage.get(content))
            else:
                target.write_text(content if isinstance(content, str) else json.dumps(content))
        uris: dict[str, str] = {}
        for pattern in ctx.render(self.outputs) or []:
            for path in sorted(glob.glob(str(root / pattern), recursive=True)):
                rel = str(Path(path).relative_to(root))
                uris[rel] = ctx.store_output(rel, Path(path).read_bytes())
        return {"uris": uris}


TASKS: list[type[RunnableTask]] = [  # the `core` family (pyproject.toml)
    Log, Fetch, Echo, Return, OutputValues, Sleep, Fail, Exit, Labels, Assert, KVSet, KVGet, KVGetKeys, KVDelete,
    LocalFiles,
]
