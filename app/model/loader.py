"""Load flow YAML into a `Flow`; every problem names file, line, column and field."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from app import settings as app_settings
from app.errors import FlowValidationError
from app.model import suggestions
from app.model.flow import Flow
from app.model.inputs import dependency_problems
from app.model.registry import registry

Position = tuple[int, int]
PathKey = tuple[str | int, ...]


MAP_TAG, SEQ_TAG = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"


class _Refused(Exception):
    """The YAML is valid but is not loaded: `message` says why, `node` where."""

    def __init__(self, node: yaml.Node, message: str):
        super().__init__(message)
        self.node, self.message = node, message


def _expanded_size(root: yaml.Node) -> int:
    """How many nodes the document becomes once its aliases are expanded (an alias is the same node object, so a
    531-byte "billion laughs" is a few nodes here and billions after expansion). Refuses recursive aliases."""
    limit = app_settings.current().limits.yaml_nodes
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise _Refused(node, "a recursive alias (a node containing itself) cannot be loaded")
        open_nodes.add(key)
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        total = 1
        for child in children:
            total += size(child)
            if total > limit:
                raise _Refused(node, f"the document expands to more than {limit} nodes (aliases counted each "
                                     "time they are used; limits.yaml_nodes, CELESTRA_LIMITS__YAML_NODES)")
        open_nodes.discard(key)
        sizes[key] = total
        return total

    return size(root)


def _construct(node: yaml.Node, path: PathKey, positions: dict[PathKey, Position]) -> Any:
    positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if node.tag not in (MAP_TAG, SEQ_TAG) and not isinstance(node, yaml.ScalarNode):
        raise _Refused(node, f"unknown YAML tag {node.tag!r}: flows use plain mappings, lists and values")
    if isinstance(node, yaml.MappingNode):
        _local.constructor.flatten_mapping(node)  # merge keys (`<<: *defaults`), as YAML 1.1 defines them
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            # A key is its text as written, as Kestra reads keys: `on:`, `yes:`, `1:` are not YAML 1.1's booleans
            # and numbers (a Switch case `on` must match the value "on").
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else _scalar(key_node)
            try:
                hash(key)
            except TypeError:
                raise _Refused(key_node, "a mapping key must be a scalar (text, number or boolean)") from None
            result[key] = _construct(value_node, (*path, key), positions)
            positions[(*path, key, "__key__")] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*path, i), positions) for i, item in enumerate(node.value)]
    return _scalar(node)


_local = threading.local()


def _scalar(node: yaml.Node) -> Any:
    # One constructor per parse and thread (it memoizes nodes; parse_yaml resets it).
    try:
        return _local.constructor.construct_object(node, deep=True)
    except ValueError as exc:  # e.g. an integer past Python's digit limit
        raise _Refused(node, f"cannot read this value: {exc}") from None


def parse_yaml(text: str, filename: str) -> tuple[Any, dict[PathKey, Position]]:
    _check_size(len(text.encode()), filename)
    positions: dict[PathKey, Position] = {}
    _local.constructor = yaml.constructor.SafeConstructor()
    try:
        node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else filename
        raise FlowValidationError([f"{where}: invalid YAML: {exc.problem}"]) from exc
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (control characters, ...)
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        shown = _code_point(exc.character)
        raise FlowValidationError([f"{filename}:{line}:{column}: invalid YAML: character {shown} is not allowed "
                                   "(control characters cannot appear in a flow)"]) from exc
    if node is None:
        raise FlowValidationError([f"{filename}:1:1: the file is empty"])
    try:
        _expanded_size(node)
        return _construct(node, (), positions), positions
    except _Refused as exc:
        mark = exc.node.start_mark
        raise FlowValidationError([f"{filename}:{mark.line + 1}:{mark.column + 1}: {exc.message}"]) from None
    except yaml.MarkedYAMLError as exc:  # e.g. an unknown tag such as `!custom`, or a merge of a non-mapping
        mark = exc.problem_mark or exc.context_mark
        where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else filename
        raise FlowValidationError([f"{where}: invalid YAML: {exc.problem or exc}"]) from None


def _code_point(character: str | int) -> str:
    return f"U+{ord(character) if isinstance(character, str) else character:04X}"


def _field_path(loc: tuple[Any, ...], data: Any) -> PathKey:
    """Drop pydantic's union tags from a loc so it follows the YAML structure."""
    path: list[str | int] = []
    node = data
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        if in_dict or (isinstance(node, list) and isinstance(part, int) and part < len(node)):
            node = node[part]
            path.append(part)
        elif part == "finally_" and isinstance(node, dict) and "finally" in node:
            node = node["finally"]
            path.append("finally")
        elif part == "else_" and isinstance(node, dict) and "else" in node:
            node = node["else"]
            path.append("else")
        elif isinstance(node, dict) and isinstance(part, str) and "." not in part and part[:1].islower():
            path.append(part)  # a missing or extra field: point at it by name
            break
    return tuple(path)


def _dotted(path: PathKey) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<flow>"


def _locate(path: PathKey, positions: dict[PathKey, Position]) -> Position:
    if (*path, "__key__") in positions:
        return positions[(*path, "__key__")]
    for cut in range(len(path), -1, -1):
        if path[:cut] in positions:
            return positions[path[:cut]]
    return (1, 1)


def _task_nodes(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        if "id" in value and "type" in value:
            yield value
        for child in value.values():
            yield from _task_nodes(child)
    elif isinstance(value, list):
        for child in value:
            yield from _task_nodes(child)


def _apply_plugin_defaults(data: dict[str, Any]) -> None:
    """Kestra's taskDefaults / pluginDefaults: values a task of that type gets unless it sets them."""
    defaults = [*(data.get("taskDefaults") or []), *(data.get("pluginDefaults") or [])]
    if not defaults:
        return
    for key in ("tasks", "errors", "finally", "afterExecution"):
        for task in _task_nodes(data.get(key)):
            for default in defaults:
                if isinstance(default, dict) and default.get("type") == task.get("type"):
                    for name, value in (default.get("values") or {}).items():
                        if default.get("forced") or name not in task:
                            task[name] = value


def load_flow(text: str, filename: str = "<flow>", *, running: bool = False) -> Flow:
    """`running`: the flow of an execution that exists already, parsed as it was accepted (what a newer version
    refuses, `not_supported_yet` and the outputs check, must not strand it)."""
    registry()  # the task union is built before the first validation
    data, positions = parse_yaml(text, filename)
    if not isinstance(data, dict):
        raise FlowValidationError([f"{filename}:1:1: a flow must be a mapping with id, namespace and tasks"])
    _apply_plugin_defaults(data)
    try:
        flow = Flow.model_validate(data, context={"running": running})
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            path = _field_path(error["loc"], data)
            line, column = _locate(path, positions)
            problems.append(
                f"{filename}:{line}:{column}: {_dotted(path)}{suggestions.label(path, data)}: "
                f"{suggestions.message(error, path, data)}"
            )
        raise FlowValidationError(sorted(set(problems), key=problems.index)) from None
    problems = []
    seen: dict[str, PathKey] = {}
    for path, task_id in _task_ids(data):
        if task_id in seen:
            line, column = _locate((*path, "id"), positions)
            problems.append(f"{filename}:{line}:{column}: {_dotted(path)}.id: duplicate task id '{task_id}'")
        seen[task_id] = path
    made = [task.id for task in flow.all_tasks()]  # and the internal tasks a ForEachItem makes of its properties
    if not problems and len(made) != len(set(made)):
        twice = sorted({task_id for task_id in made if made.count(task_id) > 1})
        problems.append(f"{filename}: duplicate task id {', '.join(map(repr, twice))}: a ForEachItem's internal "
                        "tasks are named <id>_split, <id>_items and <id>_merge")
    positions_of = {inp.id: index for index, inp in enumerate(flow.inputs)}
    for input_id, problem in dependency_problems(flow.inputs):
        line, column = _locate(("inputs", positions_of[input_id], "dependsOn"), positions)
        problems.append(f"{filename}:{line}:{column}: inputs[{positions_of[input_id]}].dependsOn: {problem}")
    for path, problem in [] if running else suggestions.unknown_outputs(data, set(made)):
        line, column = _locate(path, positions)
        problems.append(f"{filename}:{line}:{column}: {_dotted(path)}{suggestions.label(path, data)}: {problem}")
    if problems:
        raise FlowValidationError(problems)
    return flow


def _task_ids(data: Any, path: PathKey = ()) -> Iterator[tuple[PathKey, str]]:
    if isinstance(data, dict):
        if "id" in data and "type" in data and isinstance(data["id"], str):
            yield path, data["id"]
        for key, value in data.items():
            if key not in ("inputs", "outputs", "triggers", "taskDefaults", "pluginDefaults", "labels", "onResume",
                           "sla"):
                yield from _task_ids(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _task_ids(value, (*path, index))


def _check_size(size: int, filename: str) -> None:
    limit = app_settings.current().limits.flow_file_bytes
    if size > limit:
        raise FlowValidationError([f"{filename}: the flow is {size} bytes, over the limit of {limit} "
                                   "(limits.flow_file_bytes, CELESTRA_LIMITS__FLOW_FILE_BYTES)"])


def load_flow_file(path: str | Path) -> tuple[Flow, str]:
    file = Path(path)
    try:
        if file.is_file():  # a huge file is refused before it is read
            _check_size(file.stat().st_size, str(file))
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise FlowValidationError([f"{file}: cannot read: {exc.strerror}"]) from exc
    except UnicodeDecodeError as exc:
        line = file.read_bytes().count(b"\n", 0, exc.start) + 1
        raise FlowValidationError([f"{file}:{line}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                                   f"{exc.start})"]) from exc
    return load_flow(text, str(file)), text


def parse_flow(source: str, *, running: bool = False) -> Flow:
    """A stored flow's source, parsed once per process: every task run of an execution re-reads the same source.
    `running`: for an execution that exists already (see load_flow)."""
    return _parse_cached(hashlib.sha1(source.encode()).hexdigest(), source, running)


@lru_cache(maxsize=256)
def _parse_cached(_digest: str, source: str, running: bool) -> Flow:
    return load_flow(source, "<stored flow>", running=running)
