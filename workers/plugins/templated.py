"""`templating.TemplatedTask`: a runnable task whose whole definition is a template. `spec` is rendered, read as
YAML and validated as the task it names; that task then runs as this one, its outputs this one's.

As in Kestra, the task's own properties are rendered again when it runs (a property the spec rendered to text
holding `{{ }}` is rendered a second time): a spec built from inputs gives whoever sets them what a template can
reach in this flow (its namespace's KV, its files; secrets stay masked in logs and outputs)."""

from __future__ import annotations

from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError

from app.model.registry import registry
from workers.plugin_api import RunContext, RunnableTask, TaskFailure

_OUTER = {"allowFailure", "allowWarning", "disabled", "logLevel", "logToFile", "retry", "runIf", "timeout",
          "workerGroup"}


class TemplatedTask(RunnableTask):
    type: Literal["io.kestra.plugin.core.templating.TemplatedTask", "io.kestra.core.tasks.templating.TemplatedTask"]
    spec: str = Field(description="The task's YAML definition, a template rendered when it runs.")

    def run(self, ctx: RunContext) -> dict[str, Any]:
        rendered = ctx.render_str(self.spec)
        try:
            data = yaml.safe_load(rendered)
        except yaml.YAMLError as exc:
            raise TaskFailure(f"The rendered spec is not YAML: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            raise TaskFailure("The rendered spec must be a task: a mapping with a `type`")
        outer = sorted(set(data) & _OUTER)
        if outer:  # the worker applies them to the TemplatedTask; inside the spec they would do nothing
            raise TaskFailure(f"The rendered spec sets {', '.join(outer)}: set them on the TemplatedTask itself")
        cls = registry().by_type.get(data["type"])
        if cls is None:
            raise TaskFailure(f"The rendered spec names an unknown task type '{data['type']}'")
        if not issubclass(cls, RunnableTask) or isinstance(cls, type) and issubclass(cls, TemplatedTask):
            raise TaskFailure(f"The rendered spec must be a runnable task; '{data['type']}' is not one")
        try:
            task = cls.model_validate({"id": self.id, **data})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'spec'}: {e['msg']}" for e in exc.errors())
            raise TaskFailure(f"The rendered spec is not a valid {data['type']}: {problems}") from exc
        return task.run(ctx) or {}


TASKS: list[type[RunnableTask]] = [TemplatedTask]  # the `templating` family (pyproject.toml)
