"""What a validation error says: in Kestra's words, with "did you mean" for a misspelled type or property."""

from __future__ import annotations

import difflib
import re
from typing import Any

from app.model.flow import Flow
from app.model.registry import registry

PathKey = tuple[str | int, ...]
_QUOTED = re.compile(r"'([^']+)'")


# Kestra's core task types Celestra does not run yet: named as such, not as an unknown (misspelled) type.
NOT_YET = {f"io.kestra.plugin.core.{name}" for name in (
    "flow.Template", "execution.Count",
    "execution.PurgeExecutions", "execution.Resume", "execution.SetVariables", "execution.UnsetVariables",
    "log.PurgeLogs", "kv.PurgeKV", "storage.DeduplicateItems", "storage.FilterItems",
    "http.SseRequest",
    "metric.Publish", "flow.Approval", "flow.Loop")} | {
    # Kestra's deprecated script tasks and its old name of Subflow, whose properties differ from today's
    "io.kestra.core.tasks.scripts.Bash", "io.kestra.core.tasks.scripts.Python", "io.kestra.core.tasks.scripts.Node",
    "io.kestra.core.tasks.flows.Flow",
    # SQL Server: no server to test against here yet
    "io.kestra.plugin.jdbc.sqlserver.Query", "io.kestra.plugin.jdbc.sqlserver.Queries"}

# Kestra properties not run yet, by where they go (a model's Kestra type suffix, or "" for any task or trigger):
# refused as such, not as unknown (misspelled) properties.
NOT_YET_PROPERTIES = {"childFailurePolicy": "", "onChildFailure": "", "when": "", "dependsOn": "", "listeners": "",
                      "tasks": "Pause", "queueLimit": "concurrency", "queueSize": "concurrency",
                      "duration": "concurrency"}

# Kestra's trigger conditions, by short name: one a trigger does not take yet is said to be so, not misspelled.
KESTRA_CONDITIONS = {
    "DateTimeBetween", "DayWeek", "DayWeekInMonth", "ExecutionFlow", "ExecutionLabels", "ExecutionNamespace",
    "ExecutionOutputs", "ExecutionStatus", "Expression", "FlowNamespace", "Flow", "HasRetryAttempt",
    "Multiple", "MultipleCondition", "Not", "Or", "PublicHoliday", "TimeBetween", "Variable", "Weekend",
    "ExecutionsWindow", "SLA", "AdvancedExecutions", "FlowFilters", "ExecutionFilters"}


def _kestra_condition(given: str) -> bool:
    for prefix in ("io.kestra.plugin.core.condition.", "io.kestra.core.models.conditions.types."):
        if given.startswith(prefix):
            return given.removeprefix(prefix).removesuffix("Condition") in KESTRA_CONDITIONS
    return False


def message(error: Any, path: PathKey, data: Any) -> str:
    kind = error["type"]
    if kind == "union_tag_invalid":
        given = error["input"].get("type") if isinstance(error["input"], dict) else None
        what = "input" if path[:1] == ("inputs",) or "onResume" in path else "task"
        if path[:1] == ("triggers",) and "conditions" in path:
            what = "condition"
            if isinstance(given, str) and _kestra_condition(given):
                trigger = _at(path[:2], data)
                kind = str(trigger.get("type", "")).rsplit(".", 1)[-1] if isinstance(trigger, dict) else "this"
                return f"condition type {given!r} is not supported yet on a {kind} trigger"
        if what == "task" and isinstance(given, str) and given in NOT_YET:
            return f"task type {given!r} is not supported yet"
        expected = _QUOTED.findall(str(error.get("ctx", {}).get("expected_tags", "")))
        return f"unknown {what} type {given!r}{_did_you_mean(given, expected)}" if given else str(error["msg"])
    if kind == "extra_forbidden":
        name = path[-1] if path and isinstance(path[-1], str) else None
        if name in NOT_YET_PROPERTIES and _placed(path[:-1], data, NOT_YET_PROPERTIES[name]):
            return f"property {name!r} is not supported yet"
        return f"unknown property{_did_you_mean(name, _properties(path[:-1], data))}"
    if kind == "missing":
        return "required property is missing"
    if kind in ("time_delta_parsing", "time_delta_type"):
        given = _at(path, data)  # as written (the validator upper-cases what it tries)
        return (f"{error['input'] if given is None else given!r} is not a duration: use an ISO-8601 duration such "
                "as PT5M (5 minutes), PT30S or P1D")
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")  # our own message, said as it is
    return str(error["msg"])


def _placed(parent: PathKey, data: Any, where: str) -> bool:
    """Whether the object at `parent` is the kind `where` names: "" any, "concurrency" the flow's, else a type."""
    if not where:
        return True
    if where == "concurrency":
        return parent == ("concurrency",)
    node = _at(parent, data)
    return isinstance(node, dict) and str(node.get("type", "")).endswith(where)


def label(path: PathKey, data: Any) -> str:
    """Which task, input or trigger the path is in, by its id."""
    node, found = data, ""
    for depth, part in enumerate(path):
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
        if isinstance(node, dict) and "id" in node and "type" in node:
            section = path[0] if depth == 1 else "tasks"
            kind = {"inputs": "input", "triggers": "trigger", "outputs": "output"}.get(str(section), "task")
            found = f" ({kind} '{node['id']}')"
    return found


def _did_you_mean(given: Any, choices: list[str]) -> str:
    close = difflib.get_close_matches(given, choices, n=1, cutoff=0.6) if isinstance(given, str) and given else []
    return f"; did you mean {close[0]!r}?" if close else ""


def _at(path: PathKey, data: Any) -> Any:
    node = data
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _properties(path: PathKey, data: Any) -> list[str]:
    """The properties the mapping at `path` may have: the flow's, or a task's (by its type)."""
    node = _at(path, data)
    if node is None:
        return []
    if node is data:
        model: Any = Flow
    elif isinstance(node, dict) and isinstance(node.get("type"), str):
        model = registry().by_type.get(node["type"])
        if model is None:
            return []
    else:
        return []
    return [field.alias or name for name, field in model.model_fields.items()]


_OUTPUTS_REFERENCE = re.compile(r"(?<![\w.])outputs(?:\.([A-Za-z0-9_][A-Za-z0-9_]*)|\[\s*['\"]([^'\"]+)['\"]\s*\])")
_BLOCK = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_GUARDS = ("??", "defined", "default", "raw", "verbatim")
_SUBFLOW_TYPES = ("io.kestra.plugin.core.flow.Subflow", "io.kestra.core.tasks.flows.Subflow", "Subflow")


def unknown_outputs(data: Any, task_ids: set[str], path: PathKey = ()) -> list[tuple[PathKey, str]]:
    """(where, message) for each `outputs.<id>` in a template that names no task of the flow. A Subflow's own
    `outputs` render against the child execution, so they are not looked at."""
    found: list[tuple[PathKey, str]] = []
    if isinstance(data, str):
        if any(guard in data for guard in _GUARDS):
            return found  # `outputs.x ?? ''`, `is defined`, `default(...)`, raw text: a missing task may be meant
        for block in _BLOCK.findall(data):
            for match in _OUTPUTS_REFERENCE.finditer(block):
                name = match.group(1) or match.group(2)
                if name not in task_ids:
                    found.append((path, f"outputs.{name}: no task '{name}' in this flow"
                                        f"{_did_you_mean(name, sorted(task_ids))}"))
    elif isinstance(data, dict):
        subflow = data.get("type") in _SUBFLOW_TYPES
        for key, value in data.items():
            if not (subflow and key == "outputs") and key not in ("triggers",):
                found += unknown_outputs(value, task_ids, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += unknown_outputs(value, task_ids, (*path, index))
    return found
