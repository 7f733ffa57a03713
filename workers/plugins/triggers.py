"""`trigger.Toggle`: switch a trigger of a deployed flow of this namespace on or off at run time. The switch is
stored (app/store/trigger_toggles.py) and wins over the trigger's `disabled` in the flow's source: the scheduler
and the Flow triggers read it before they fire."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from app import runtime
from app.errors import FlowValidationError, NotFoundError
from app.model.loader import parse_flow
from app.store import trigger_toggles
from workers.plugin_api import RunContext, RunnableTask, TaskFailure


class Toggle(RunnableTask):
    type: Literal["io.kestra.plugin.core.trigger.Toggle", "io.kestra.core.tasks.trigger.Toggle"]
    trigger: str = Field(description="The id of the trigger; may be templated.")
    enabled: bool = Field(False, description="true switches it on, false off.")
    namespace: str | None = Field(None, description="The flow's namespace: this flow's (the only one allowed).")
    flowId: str | None = Field(None, description="The flow; this flow when not set.")

    def run(self, ctx: RunContext) -> dict[str, Any]:
        flow = ctx.variables["flow"]
        namespace = ctx.render_str(self.namespace).strip() if self.namespace else ctx.namespace
        flow_id = ctx.render_str(self.flowId).strip() if self.flowId else str(flow["id"])
        trigger_id = ctx.render_str(self.trigger).strip()
        if namespace != ctx.namespace:
            raise TaskFailure(f"Cannot toggle a trigger of namespace '{namespace}': a task toggles only the triggers "
                              f"of its own namespace '{ctx.namespace}'")
        store = runtime.store()
        try:
            _, source = store.get_flow(namespace, flow_id)
            declared = {trigger.id for trigger in parse_flow(source, running=True).triggers}
        except (NotFoundError, FlowValidationError) as exc:
            raise TaskFailure(f"Cannot toggle trigger '{trigger_id}': {exc}") from exc
        if trigger_id not in declared:
            raise TaskFailure(f"Flow {namespace}.{flow_id} has no trigger '{trigger_id}'"
                              + (f" (its triggers: {', '.join(sorted(declared))})" if declared else ""))
        trigger_toggles.toggle(store, namespace, flow_id, trigger_id, disabled=not self.enabled)
        ctx.log("INFO", f"Trigger {namespace}.{flow_id}.{trigger_id} switched {'on' if self.enabled else 'off'}")
        return {}


TASKS: list[type[RunnableTask]] = [Toggle]  # the `triggers` family (pyproject.toml)
