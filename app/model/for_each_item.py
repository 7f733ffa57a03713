"""ForEachItem: one execution of a subflow per batch of a file's lines, for files too large for a ForEach.

As in Kestra, the task is a sequence of three internal tasks made from its properties, whose runs and outputs users
see and reference:
- `<id>_split`: a worker cuts the file into batch files, streaming it (workers/plugins/for_each_item.py);
  outputs `splits`, a file listing the batches' URIs.
- `<id>_items`: the executor starts one execution of the subflow per batch, with `{{ taskrun.items }}` (the batch's
  URI) and `{{ taskrun.iteration }}` (its number, from 0) in its inputs, and counts how they end
  (app/engine/for_each_item.py); outputs `numberOfBatches` and `iterations` (executions per state).
- `<id>_merge`: a worker gathers the subflows' `outputs` into one file, one line each, in batch order; outputs
  `subflowOutputs`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from app.model.flow import Model, Retry, not_supported_yet
from app.model.flowables import FlowableTask, SubflowCall

SPLIT = "io.kestra.plugin.core.flow.ForEachItem$ForEachItemSplit"
EXECUTABLE = "io.kestra.plugin.core.flow.ForEachItem$ForEachItemExecutable"
MERGE = "io.kestra.plugin.core.flow.ForEachItem$ForEachItemMergeOutputs"
_SUBFLOW_FIELDS = ("namespace", "flowId", "revision", "inputs", "labels", "wait", "transmitFailed", "inheritLabels")


class Batch(Model):
    """How the lines are grouped: `rows` lines per batch (1 when nothing is set), `bytes` per batch, `partitions`
    batches in all (round robin), or one batch per value of `regexPattern`'s first group."""

    rows: int | str | None = None
    bytes: int | str | None = None
    partitions: int | str | None = None
    regexPattern: str | None = None
    separator: str = Field("\n", description="Written after each line in the batch files.")

    @model_validator(mode="after")
    def _one_way(self) -> Batch:
        chosen = [name for name in ("rows", "bytes", "partitions", "regexPattern") if getattr(self, name) is not None]
        if len(chosen) > 1:
            raise ValueError(f"a batch is cut one way: give one of rows, bytes, partitions or regexPattern, not "
                             f"{' and '.join(chosen)}")
        return self


class Internal(Model):
    """A task ForEachItem makes of its properties: written by hand it is refused, naming what to write instead."""

    madeBy: str | None = Field(None, validate_default=True, exclude=True, description="The ForEachItem's id.")

    @field_validator("madeBy")
    @classmethod
    def _made_by_for_each_item(cls, value: str | None) -> str | None:
        if value is None:
            raise ValueError("this task type is internal to ForEachItem: write an io.kestra.plugin.core.flow."
                             "ForEachItem, which makes it")
        return value


class ForEachItemExecutable(SubflowCall, Internal):
    """The internal `<id>_items` task: stepped by the executor, like a Subflow with one child per batch."""

    type: Literal["io.kestra.plugin.core.flow.ForEachItem$ForEachItemExecutable"]

    @property
    def base_id(self) -> str:
        return self.id.removesuffix("_items")


class ForEachItem(SubflowCall):
    type: Literal["io.kestra.plugin.core.flow.ForEachItem", "io.kestra.core.tasks.flows.ForEachItem", "ForEachItem"]
    items: str = Field(description="The kestra:// URI of the file whose lines are the items.")
    batch: Batch = Field(default_factory=Batch)
    retry: Annotated[Retry | None, not_supported_yet(
        "retry on a ForEachItem", None, ": set it on the subflow's tasks or on the subflow")] = None
    scheduleDate: Annotated[str | None, not_supported_yet("ForEachItem scheduleDate", None)] = None
    restartBehavior: Annotated[str | None, not_supported_yet(
        "ForEachItem restartBehavior", None, ": a failed ForEachItem cannot be restarted yet")] = None
    tasks: list[AnyTask] = Field(
        default_factory=list, exclude=True,
        description="Its three internal tasks (`<id>_split`, `<id>_items`, `<id>_merge`), made from the properties "
                    "above; not written in the flow.")

    @model_validator(mode="before")
    @classmethod
    def _internal_tasks(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if data.get("tasks"):
            raise ValueError("ForEachItem takes no `tasks`: each batch is run by the subflow `namespace`/`flowId`")
        if not all(isinstance(data.get(name), str) for name in ("id", "items", "namespace", "flowId")):
            return data  # the missing property is what the user is told about, not the internal tasks it breaks
        task_id = data.get("id")
        subflow = {name: data[name] for name in _SUBFLOW_FIELDS if name in data}
        return {**data, "tasks": [
            {"id": f"{task_id}_split", "type": SPLIT, "items": data.get("items"), "batch": data.get("batch") or {},
             "madeBy": task_id},
            {"id": f"{task_id}_items", "type": EXECUTABLE, **subflow, "madeBy": task_id},
            {"id": f"{task_id}_merge", "type": MERGE, "madeBy": task_id},
        ]}

    def child_lists(self) -> list[list[Any]]:
        return [self.tasks, *super().child_lists()]


TASKS: list[type[FlowableTask]] = [ForEachItem, ForEachItemExecutable]
AnyTask = Any  # defined after the models, so app/model/registry.py resolves it to every registered task type
