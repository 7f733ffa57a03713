"""The variables a template sees: Kestra's names (inputs, vars, outputs, taskrun, parents, execution, flow, ...)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from app import runtime, templating
from app.errors import ConfigError
from app.model.flow import Flow, Task
from app.model.inputs import InputError, coerce_output
from app.model.records import Execution, TaskRun, iso
from app.model.states import State
from app.store import encryption
from app.store.masking import MIN_LINE, Masker
from app.store.outage import until_stored

OUTPUT_STATES = frozenset({State.SUCCESS, State.WARNING, State.FAILED, State.RUNNING, State.KILLED})


def outputs_tree(runs: list[TaskRun]) -> dict[str, Any]:
    """outputs.<taskId> for plain runs, outputs.<taskId>[<loop value>]... for runs inside loops."""
    tree: dict[str, Any] = {}
    for run in runs:  # in creation order: a LoopUntil iteration's run comes after the earlier iterations' runs
        current = bool(run.outputs) and run.state in OUTPUT_STATES
        if not current and run.iteration is None:
            continue
        if not run.values:
            if current:
                tree[run.task_id] = run.outputs
            else:  # a new iteration's run without outputs yet: the previous iteration's are not its outputs
                tree.pop(run.task_id, None)
            continue
        if not current:
            _forget(tree, [run.task_id, *run.values])
            continue
        node = tree.setdefault(run.task_id, {})
        for value in run.values[:-1]:
            node = node.setdefault(value, {})
        node[run.values[-1]] = run.outputs
    return tree


def _forget(tree: dict[str, Any], path: list[str]) -> None:
    node: Any = tree
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(path[-1], None)


class LazyOutputs(Mapping[str, Any]):
    """`outputs` loaded on first use: most tasks never read other tasks' outputs, so a worker skips the query."""

    def __init__(self, load: Callable[[], list[TaskRun]]):
        self._load = load
        self._tree: dict[str, Any] | None = None

    @property
    def tree(self) -> dict[str, Any]:
        if self._tree is None:
            self._tree = outputs_tree(self._load())
        return self._tree

    def __getitem__(self, key: str) -> Any:
        return self.tree[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.tree)

    def __len__(self) -> int:
        return len(self.tree)


def env_vars(prefix: str) -> dict[str, str]:
    return {k[len(prefix) :].lower(): v for k, v in os.environ.items() if k.startswith(prefix)}


def _plain_inputs(ex: Execution) -> dict[str, Any]:
    """SECRET inputs decrypted. A key mismatch is a rendering error, so the step or task that renders fails, saying
    why, like any template that cannot render (the execution never hangs on it)."""
    try:
        return {key: encryption.decrypt(value) for key, value in ex.inputs.items()}
    except ConfigError as exc:
        raise templating.TemplateError(str(exc)) from None


def secret_inputs_masker(flow: Flow, scope: Mapping[str, Any], min_length: int = 1) -> Masker:
    """A masker of the flow's SECRET inputs (those of `min_length` characters or more), as decrypted in `scope`."""
    masker = Masker()
    inputs = scope.get("inputs") or {}
    for inp in flow.inputs:
        if inp.type == "SECRET" and isinstance(inputs.get(inp.id), str) and len(inputs[inp.id]) >= min_length:
            masker.remember(inputs[inp.id])
    return masker


def without_secret_inputs(flow: Flow, scope: Mapping[str, Any], value: Any) -> Any:
    """`value` (rendered against `scope`) with the flow's decrypted SECRET inputs masked, before it is stored."""
    return secret_inputs_masker(flow, scope).mask_value(value)


def flow_outputs(flow: Flow, scope: Mapping[str, Any]) -> dict[str, Any]:
    """The flow's `outputs`, rendered and typed, secrets masked. One that renders to null is left out when it is
    not `required`, and fails the execution when it is (raises InputError, or TemplateError from rendering)."""
    values: dict[str, Any] = {}
    for output in flow.outputs:
        value = coerce_output(output.id, output.type, templating.render_value(output.value, scope))
        if value is None and output.required:
            name = f"'{output.id}'" + (f" ({output.displayName})" if output.displayName else "")
            raise InputError(output.id, f"Missing required output {name}: its value is null (set required: false "
                                        "to leave it out then)")
        if value is not None:
            values[output.id] = value
    return without_secret_inputs(flow, scope, values)


def build_context(
    flow: Flow,
    ex: Execution,
    run: TaskRun | None = None,
    task: Task | None = None,
    *,
    globals_: Mapping[str, Any] | None = None,
    env_prefix: str = "ENV_",
    functions: Mapping[str, Callable[..., Any]] | None = None,
    outputs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    context: dict[str, Any] = {
        "flow": {"id": flow.id, "namespace": flow.namespace, "revision": ex.flow_revision},
        "execution": {
            "id": ex.id,
            "startDate": iso(ex.started or ex.created),
            "originalId": ex.original_id or ex.id,
            "state": (ex.final_state or ex.state).value,  # afterExecution tasks see the state it ends in
        },
        "inputs": _plain_inputs(ex),
        "vars": flow.variables,
        "outputs": outputs if outputs is not None else outputs_tree(ex.task_runs),
        "labels": ex.labels,
        "envs": env_vars(env_prefix),
        "globals": dict(globals_ or {}),
    }
    if ex.trigger is not None:
        context["trigger"] = ex.trigger
    if run is not None:
        context["taskrun"] = {
            "id": run.id,
            "value": run.value,
            "parentId": run.parent_id,
            "attemptsCount": max(len(run.attempts) - 1, 0),
            "startDate": iso(run.started or run.created),
            "iteration": run.iteration,
        }
        # `parents`: the enclosing task runs that carry a loop value, nearest first (Kestra's parent chain).
        runs_by_id = {r.id: r for r in ex.task_runs}
        loop_parents = []
        parent = runs_by_id.get(run.parent_id or "")
        while parent is not None:
            if parent.value is not None:
                loop_parents.append({"taskrun": {"value": parent.value, "id": parent.id}})
            parent = runs_by_id.get(parent.parent_id or "")
        context["parents"] = loop_parents
        if loop_parents:
            context["parent"] = loop_parents[0]
    if task is not None:
        context["task"] = {"id": task.id, "type": task.type}
    if functions:
        context.update(functions)
    context.setdefault("render", templating.make_render_function(context))
    return context


def executor_functions(ex: Execution, retry_for: float = 0) -> dict[str, Callable[..., Any]]:
    """Template functions that read the store; a worker rendering a task waits `retry_for` through an outage."""
    store = runtime.store()

    def kv(key: str, namespace: str | None = None, error_on_missing: bool = False) -> Any:
        value = until_stored("kv()", lambda: store.kv_get(namespace or ex.namespace, key), retry_for)
        if value is None and error_on_missing:
            raise templating.TemplateError(
                f"The key '{key}' does not exist in the namespace '{namespace or ex.namespace}'."
            )
        return value

    def error_logs() -> list[dict[str, Any]]:
        return [{"taskId": row["task_id"], "taskRunId": row["task_run_id"], "level": row["level"],
                 "message": row["message"], "timestamp": row["timestamp"].isoformat()}
                for row in store.logs(ex.id) if row["level"] == "ERROR"]

    def secret(name: str) -> str:
        raise templating.TemplateError(f"secret('{name}') is only available in tasks run by a worker")

    return {"kv": kv, "errorLogs": error_logs, "secret": secret}


def refuse_secrets_in_clear(flow: Flow, scope: dict[str, Any], child_flow: Flow, inputs: dict[str, Any]) -> None:
    """A SECRET input passed on to a subflow stays encrypted only if the child declares it SECRET too; an input of
    another type would store it in clear text, so the Subflow task fails instead, saying what to change."""
    masker = secret_inputs_masker(flow, scope, min_length=MIN_LINE)  # a 1-character secret is in every text
    secret_ids = {inp.id for inp in child_flow.inputs if inp.type == "SECRET"}
    for name, value in inputs.items():
        if name not in secret_ids and masker.mask_value(value) != value:
            raise ConfigError(f"Input '{name}' of {child_flow.namespace}.{child_flow.id} would receive the value of a "
                              f"SECRET input and store it in clear text: declare it `type: SECRET` in that flow")
