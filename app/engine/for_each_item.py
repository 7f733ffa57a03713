"""The executor's side of ForEachItem's `<id>_items` task (app/model/for_each_item.py).

Its run starts one child execution per batch that `<id>_split` listed. They are created in one transaction with the
run's outputs (`numberOfBatches`, `iterations`), so a crash leaves either all of them or none and the run still
waiting (started again by the next step). Each child that ends is counted once (the store marks it told, see
app/store/children.py); with `wait`, the run ends when the last one has: FAILED if one failed and `transmitFailed`.
A child's flow `outputs` are written as one line (JSON, which is also Ion text) under the ForEachItem run, where
`<id>_merge` gathers them in batch order.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import Any

from app import runtime
from app.engine.run_index import RunIndex
from app.model.for_each_item import ForEachItemExecutable
from app.model.records import Execution, TaskRun, now
from app.model.states import State
from app.store.storage import execution_uri

NOT_ENDED = ("CREATED", "RUNNING")


def outputs_prefix(ex: Execution, base_id: str, for_each_item_run_id: str) -> str:
    """Where each subflow's outputs go (`<iteration>.ion`); workers/plugins/for_each_item.py merges them."""
    return execution_uri(ex.namespace, ex.flow_id, ex.id, "tasks", base_id, for_each_item_run_id, "outputs") + "/"


def batches(task: ForEachItemExecutable, run: TaskRun, runs: RunIndex) -> Iterator[str]:
    """The URIs of the batch files, read line by line from the `splits` file of the sibling `<id>_split` run."""
    split = next(r for r in runs.children(run.parent_id) if r.task_id == f"{task.base_id}_split")
    with runtime.storage().open(split.outputs["splits"]) as stream:
        for line in io.TextIOWrapper(stream, encoding="utf-8"):
            if line.strip():
                yield line.strip()


def batch_scope(scope: dict[str, Any], uri: str, iteration: int) -> dict[str, Any]:
    """`{{ taskrun.items }}` and `{{ taskrun.iteration }}` for one batch's inputs."""
    return {**scope, "taskrun": {**scope.get("taskrun", {}), "items": uri, "iteration": iteration}}


def batch_trigger(ex: Execution, run: TaskRun, iteration: int) -> dict[str, Any]:
    """The child's `{{ trigger }}`: who started it, as Kestra gives a subflow execution."""
    return {"executionId": ex.id, "namespace": ex.namespace, "flowId": ex.flow_id,
            "flowRevision": ex.flow_revision, "taskRunId": run.id, "taskRunIteration": iteration}


def started(task: ForEachItemExecutable, run: TaskRun, count: int) -> None:
    """The children exist: record how many; without `wait` (or with no batch at all) the run is done."""
    if not task.wait:
        run.outputs = {"numberOfBatches": count, "iterations": {"RUNNING": 0, "SUCCESS": count}}
    elif count:
        run.outputs = {"numberOfBatches": count, "iterations": {"CREATED": count, "RUNNING": 0}}
    if not task.wait or not count:
        _finish(run, State.SUCCESS)


def child_ended(task: ForEachItemExecutable, run: TaskRun, ex: Execution, child: Execution,
                allowed: Callable[[ForEachItemExecutable, State], State]) -> None:
    """Count `child`'s end (once: the caller has marked it told); end the run when it was the last."""
    counts = dict(run.outputs.get("iterations") or {})
    counts["CREATED"] = max(counts.get("CREATED", 0) - 1, 0)
    counts[child.state.value] = counts.get(child.state.value, 0) + 1
    run.outputs = {**run.outputs, "iterations": counts}
    iteration = (child.trigger or {}).get("taskRunIteration")
    if child.outputs and iteration is not None and run.parent_id:
        line = json.dumps(child.outputs, default=str, separators=(",", ":")) + "\n"
        runtime.storage().put(outputs_prefix(ex, task.base_id, run.parent_id) + f"{iteration}.ion", line.encode())
    if sum(n for state, n in counts.items() if state not in NOT_ENDED) < run.outputs.get("numberOfBatches", 0):
        return
    failed = any(n and State(state).failed for state, n in counts.items() if state not in NOT_ENDED)
    if failed and task.transmitFailed:
        bad = {state: n for state, n in counts.items() if n and state not in NOT_ENDED and State(state).failed}
        run.error = "subflow executions ended " + ", ".join(f"{state} ({n})" for state, n in bad.items())
    _finish(run, allowed(task, State.FAILED if failed and task.transmitFailed else State.SUCCESS))


def _finish(run: TaskRun, state: State) -> None:
    run.state, run.ended = state, now()
    if run.attempts and not run.attempts[-1].state.terminal:
        run.attempts[-1].state, run.attempts[-1].end = state, run.ended
