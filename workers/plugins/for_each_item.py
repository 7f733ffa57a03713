"""The worker side of ForEachItem (app/model/for_each_item.py): cutting the items into batch files, and gathering
the subflows' outputs into one file. Both stream: a file of any size passes through a temporary file at a time."""

from __future__ import annotations

import shutil
from typing import Any, Literal

from pydantic import Field

from app.model.for_each_item import Batch, Internal
from app.store.storage import execution_uri
from workers.plugin_api import RunContext, RunnableTask, TaskFailure
from workers.plugins.storage import Split, new_spool, store_spooled


def subflow_outputs_prefix(namespace: str, flow_id: str, execution_id: str, base_id: str, run_id: str) -> str:
    """Where the executor writes each subflow's outputs (`<iteration>.ion`) for the ForEachItem run `run_id`."""
    return execution_uri(namespace, flow_id, execution_id, "tasks", base_id, run_id, "outputs") + "/"


class ForEachItemSplit(RunnableTask, Internal):
    type: Literal["io.kestra.plugin.core.flow.ForEachItem$ForEachItemSplit"]  # for_each_item.SPLIT
    items: str
    batch: dict[str, Any] = Field(default_factory=dict)  # checked as a Batch by the ForEachItem it belongs to

    def _split(self, items: str) -> Split:
        batch = Batch.model_validate(self.batch)
        modes = batch.model_dump(exclude={"separator"}, exclude_none=True) or {"rows": 1}
        return Split.model_validate({"id": self.id, "type": "Split", "from": items, "separator": batch.separator,
                                     **modes})

    def run(self, ctx: RunContext) -> dict[str, Any]:
        items = ctx.render_str(self.items).strip()
        if not items.startswith("kestra://"):
            raise TaskFailure(f"Unable to split the items from {items}: this is not an internal storage URI")
        batches = self._split(items).run(ctx)["uris"]
        listing = new_spool()
        listing.write("".join(uri + "\n" for uri in batches).encode())
        ctx.log("INFO", f"{len(batches)} batches")
        return {"splits": store_spooled(ctx, "splits.txt", listing)}


class ForEachItemMergeOutputs(RunnableTask, Internal):
    type: Literal["io.kestra.plugin.core.flow.ForEachItem$ForEachItemMergeOutputs"]  # for_each_item.MERGE

    def run(self, ctx: RunContext) -> dict[str, Any]:
        v = ctx.variables
        parent_id = v["taskrun"]["parentId"]
        prefix = subflow_outputs_prefix(v["flow"]["namespace"], v["flow"]["id"], v["execution"]["id"],
                                        self.id.removesuffix("_merge"), parent_id)
        parts = sorted((uri for uri in ctx.storage.list(prefix) if uri.endswith(".ion")),
                       key=lambda uri: int(uri.rsplit("/", 1)[-1].removesuffix(".ion")))
        if not parts:
            return {}  # the subflow has no outputs (or there were no batches), as in Kestra
        merged = new_spool()
        for uri in parts:
            with ctx.storage.open(uri) as part:
                shutil.copyfileobj(part, merged)
        return {"subflowOutputs": store_spooled(ctx, "outputs.ion", merged)}


TASKS: list[type[RunnableTask]] = [ForEachItemSplit, ForEachItemMergeOutputs]  # the `for_each_item_files` family
