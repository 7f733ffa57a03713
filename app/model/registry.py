"""Task types, found through the `celestra.tasks` entry points; the union flows are validated against.

Every family registers the same way, the built-in ones included (see pyproject.toml), so a third-party distribution
adds task types with one line in its own pyproject:

    [project.entry-points."celestra.tasks"]
    hello = "celestra_hello:HelloTask"        # a task class, or a list of them

The registry is built once, on first use (loading a flow, `celestra schema`, `celestra plugins`). A family that
cannot be imported is an error naming it, never a silent gap: its task types would otherwise turn into
"unknown task type" errors far from the cause.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Annotated, Any, Union, get_args

from pydantic import BaseModel, Field

from app.errors import ConfigError
from app.model import flowables
from app.model.flow import Flow, Task
from app.model.inputs import InputDef
from app.model.polling import PollingTrigger
from app.model.triggers import trigger_union

GROUP = "celestra.tasks"


class PluginError(ConfigError):
    """A registered family of task types cannot be loaded, or two families claim one type name."""


@dataclass(frozen=True)
class Family:
    name: str  # the entry point's name
    target: str  # module:attribute
    distribution: str | None
    classes: tuple[type[Task], ...]
    triggers: tuple[type[PollingTrigger], ...] = ()  # its polling triggers (a SQL family's jdbc Trigger)


@dataclass(frozen=True)
class TaskRegistry:
    families: tuple[Family, ...]
    by_type: Mapping[str, type[Task]]
    triggers: Mapping[str, type[PollingTrigger]] = field(default_factory=dict)  # polling triggers by type name


def type_names(cls: type[Task] | type[PollingTrigger]) -> tuple[str, ...]:
    """A task class's names: its `type` Literal, the canonical Kestra name first, then the aliases."""
    return tuple(get_args(cls.model_fields["type"].annotation))


def install_hint(entry: EntryPoint) -> str:
    """`pip install 'dist[extra]'` when the entry point names an extra, as Celestra's optional families do."""
    dist = entry.dist.name if entry.dist is not None else None
    if entry.extras and dist:
        return f" (pip install '{dist}[{','.join(entry.extras)}]')"
    return f" (reinstall or remove the distribution '{dist}')" if dist else ""


def load_family(entry: EntryPoint) -> Family:
    dist = entry.dist.name if entry.dist is not None else None
    where = f"task family '{entry.name}' ({entry.value}" + (f", from {dist})" if dist else ")")
    try:
        loaded = entry.load()
    except ImportError as exc:
        raise PluginError(f"The {where} cannot be imported: {exc}{install_hint(entry)}") from exc
    loaded_classes = tuple(loaded) if isinstance(loaded, Iterable) else (loaded,)
    for cls in loaded_classes:
        if not (isinstance(cls, type) and issubclass(cls, Task | PollingTrigger)) or not type_names(cls):
            raise PluginError(f"The {where} must name a Task or PollingTrigger subclass (or a list of them) whose "
                              f"`type` is a Literal of its names; got {cls!r}")
    tasks = tuple(cls for cls in loaded_classes if issubclass(cls, Task))
    triggers = tuple(cls for cls in loaded_classes if issubclass(cls, PollingTrigger))
    return Family(entry.name, entry.value, dist, tasks, triggers)


def build(entries: Iterable[EntryPoint]) -> TaskRegistry:
    """Load and check every family; `registry()` then binds the flow model to what was found."""
    families = tuple(load_family(entry) for entry in sorted(entries, key=lambda e: e.name))
    if not families:
        raise PluginError(f"No task types are registered under the '{GROUP}' entry points: install Celestra "
                          "(pip install -e .) rather than running it from a bare source folder")
    by_type: dict[str, type[Task]] = {}
    triggers: dict[str, type[PollingTrigger]] = {}
    owner: dict[str, str] = {}
    for family in families:
        for kind, classes in ((by_type, family.classes), (triggers, family.triggers)):
            for cls in classes:
                for name in type_names(cls):
                    if name in owner and (by_type.get(name) or triggers.get(name)) is not cls:
                        raise PluginError(f"Type '{name}' is registered twice: by family '{owner[name]}' and by "
                                          f"family '{family.name}'")
                    owner[name] = family.name
                    kind[name] = cls  # type: ignore[assignment]  # a task class into by_type, a trigger's into triggers
    return TaskRegistry(families, by_type, triggers)


def _bind(classes: list[type[Task]], polling: list[type[PollingTrigger]]) -> None:
    """Resolve the `AnyTask` annotations of the flow and its flowables to the union of every registered class, and
    `Flow.triggers` to the built-in triggers and every registered polling trigger."""
    any_task = Annotated[Union[tuple(classes)], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007
    namespace: dict[str, Any] = {"AnyTask": any_task, "InputDef": InputDef, "AnyTrigger": trigger_union(polling)}
    # Every model holding child tasks: the built-in flowables and any other family's (ForEachItem's own module).
    holders = [cls for cls in classes if issubclass(cls, flowables.FlowableTask)]
    models: list[type[BaseModel]] = [*dict.fromkeys([*flowables.FLOWABLE_TASKS, *holders]), flowables.DagTask, Flow]
    for model in models:
        model.model_rebuild(_types_namespace=namespace, force=True)


_lock = threading.Lock()
_registry: TaskRegistry | None = None


def _after_fork() -> None:
    # A process forked while another thread was building the registry starts with the lock held and the registry
    # unbuilt: it builds its own.
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork)


def registry() -> TaskRegistry:
    """The process's registry, built from the installed entry points on first use."""
    global _registry
    if _registry is None:
        with _lock:
            if _registry is None:
                built = build(entry_points(group=GROUP))
                _bind(list(dict.fromkeys(built.by_type.values())), list(dict.fromkeys(built.triggers.values())))
                _registry = built
    return _registry


def __getattr__(name: str) -> Any:
    if name == "TYPE_NAMES":  # every task type by each of its names
        return registry().by_type
    raise AttributeError(name)


RUNNERS_GROUP = "celestra.runners"  # read here by name only: the control plane never imports runner code


@dataclass(frozen=True)
class PluginRow:
    kind: str  # "task", "trigger" (a polling trigger) or "runner"
    type: str  # the canonical (Kestra) type name
    aliases: tuple[str, ...]
    family: str  # the entry point's name (tasks) or the distribution (runners)
    target: str  # module:attribute
    extra: str | None  # the pip extra a runner needs
    distribution: str | None  # what installed it


def plugin_rows() -> list[PluginRow]:
    """Every task type and task runner with its aliases: what `celestra plugins` prints."""
    rows = [PluginRow(kind, names[0], names[1:], family.name, f"{cls.__module__}:{cls.__qualname__}",
                      None, family.distribution)
            for family in registry().families
            for kind, classes in (("task", family.classes), ("trigger", family.triggers))
            for cls in classes for names in [type_names(cls)]]
    by_target: dict[str, list[EntryPoint]] = {}
    for entry in entry_points(group=RUNNERS_GROUP):
        by_target.setdefault(entry.value, []).append(entry)
    for target, entries in by_target.items():
        names = sorted((e.name for e in entries), key=lambda n: ("." not in n, n))
        extras = entries[0].extras
        dist = entries[0].dist.name if entries[0].dist else None
        rows.append(PluginRow("runner", names[0], tuple(names[1:]), dist or "", target.split(" ")[0],
                              ",".join(extras) or None, dist))
    return rows
