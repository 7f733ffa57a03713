"""Kestra's legacy state tasks (state.Set, Get, Delete): a small JSON map a flow keeps between executions.

As in Kestra (whose state store lives in its KV store), a state is one KV entry of the namespace, named by the
flow (unless `namespace: true` shares it across the namespace's flows), the state's `name` and, unless
`taskrunValue: false`, the loop value of the task run (each iteration of a ForEach keeps its own). Set merges
`data` into what is there (maps deeply, as Kestra's MapUtils.merge does). Its KV keys start with `tasks-states/`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from workers.plugin_api import RunContext, RunnableTask, TaskFailure

PREFIX = "tasks-states"


class _State(RunnableTask):
    name: str = "default"
    namespace: bool = Field(False, description="Share the state between the flows of the namespace.")
    taskrunValue: bool = Field(True, description="Keep one state per loop value of the task run.")

    def key(self, ctx: RunContext) -> str:
        v = ctx.variables
        scope = "_namespace" if self.namespace else v["flow"]["id"]
        value = v["taskrun"].get("value") if self.taskrunValue else None
        return "/".join([PREFIX, scope, ctx.render_str(self.name), *([str(value)] if value is not None else [])])

    def current(self, ctx: RunContext) -> dict[str, Any] | None:
        found = ctx.kv.get(ctx.namespace, self.key(ctx))
        return found if isinstance(found, dict) else None


def merge(current: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    merged = dict(current)
    for key, value in new.items():
        merged[key] = merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            else value
    return merged


class StateSet(_State):
    type: Literal["io.kestra.plugin.core.state.Set", "io.kestra.core.tasks.states.Set"]
    data: dict[str, Any] = Field(default_factory=dict)

    def run(self, ctx: RunContext) -> dict[str, Any]:
        key = self.key(ctx)
        merged = merge(self.current(ctx) or {}, ctx.render(self.data))
        ctx.kv.put(ctx.namespace, key, merged)
        return {"count": len(merged), "key": key}


class StateGet(_State):
    type: Literal["io.kestra.plugin.core.state.Get", "io.kestra.core.tasks.states.Get"]
    errorOnMissing: bool = False

    def run(self, ctx: RunContext) -> dict[str, Any]:
        data = self.current(ctx)
        if data is None and self.errorOnMissing:
            raise TaskFailure(f"No state '{ctx.render_str(self.name)}' ({self.key(ctx)})")
        return {"count": len(data or {}), "data": data or {}}


class StateDelete(_State):
    type: Literal["io.kestra.plugin.core.state.Delete", "io.kestra.core.tasks.states.Delete"]
    errorOnMissing: bool = False

    def run(self, ctx: RunContext) -> dict[str, Any]:
        deleted = ctx.kv.delete(ctx.namespace, self.key(ctx))
        if not deleted and self.errorOnMissing:
            raise TaskFailure(f"No state '{ctx.render_str(self.name)}' to delete ({self.key(ctx)})")
        return {"deleted": deleted}


TASKS: list[type[RunnableTask]] = [StateSet, StateGet, StateDelete]  # the `state` family (pyproject.toml)
