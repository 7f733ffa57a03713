"""Which queue a task run (or a polling trigger's evaluation) goes to, and what happens when nobody serves it.

Order: the task's `workerGroup` -> the flow's `workerGroup` -> the namespace default from settings (a parent
namespace's default applies to its children) -> no group (the default queue). The fallback comes from the same level
that named the group, else the namespace default's, else WAIT.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from app import templating
from app.errors import CelestraError
from app.model.flow import TEMPLATE_MARKERS, WORKER_GROUP_KEY_PATTERN, Flow, Task, WorkerGroup
from app.settings import Settings, WorkerGroupRef

Fallback = Literal["WAIT", "FAIL", "CANCEL"]


class UnknownWorkerGroup(CelestraError):
    pass


@dataclass(frozen=True)
class Route:
    group: str | None  # None: the default queue
    fallback: Fallback = "WAIT"


def namespace_default(settings: Settings, namespace: str) -> WorkerGroupRef | None:
    while namespace:
        conf = settings.namespaces.get(namespace)
        if conf and conf.worker_group:
            return conf.worker_group
        namespace = namespace.rpartition(".")[0]
    return None


def _declared_ref(settings: Settings, flow: Flow, ref: WorkerGroup | None) -> tuple[str | None, Fallback]:
    default = namespace_default(settings, flow.namespace)
    for level in (ref, flow.workerGroup):
        if level is not None:
            return level.key, level.fallback or (default.fallback if default else "WAIT")
    if default is not None:
        return default.key, default.fallback
    return None, "WAIT"


def check_group(settings: Settings, key: str) -> None:
    """Groups must be declared once any is (a typo must not send work to a queue nobody will ever serve)."""
    if settings.worker_groups and key not in settings.worker_groups:
        declared = ", ".join(sorted(settings.worker_groups))
        raise UnknownWorkerGroup(f"Unknown worker group '{key}': declared groups are {declared}")


def route_task(settings: Settings, flow: Flow, task: Task, scope: Callable[[], dict[str, Any]]) -> Route:
    """The route of one task run; a templated key is rendered with `scope()`."""
    key, fallback = _declared_ref(settings, flow, task.workerGroup)
    if key is None:
        return Route(None, fallback)
    if any(marker in key for marker in TEMPLATE_MARKERS):
        key = templating.render(key, scope()).strip()
        if not key:
            return Route(None, fallback)
        if not re.match(WORKER_GROUP_KEY_PATTERN, key):
            raise UnknownWorkerGroup(f"Worker group key {key!r} (rendered) must match {WORKER_GROUP_KEY_PATTERN}")
    check_group(settings, key)
    return Route(key, fallback)


def route_trigger(settings: Settings, flow: Flow, ref: WorkerGroup | None) -> Route:
    """The route of a polling trigger's evaluation: its own `workerGroup`, the flow's, the namespace default. A
    templated key renders with `{{ flow.* }}` only (no execution exists yet)."""
    key, fallback = _declared_ref(settings, flow, ref)
    if key is not None and any(marker in key for marker in TEMPLATE_MARKERS):
        key = templating.render(key, {"flow": {"id": flow.id, "namespace": flow.namespace}}).strip() or None
        if key is not None and not re.match(WORKER_GROUP_KEY_PATTERN, key):
            raise UnknownWorkerGroup(f"Worker group key {key!r} (rendered) must match {WORKER_GROUP_KEY_PATTERN}")
    if key is not None:
        check_group(settings, key)
    return Route(key, fallback)


def static_group_problems(settings: Settings, flow: Flow) -> Iterator[str]:
    """Undeclared static keys, found before anything runs (validate, deploy, run)."""
    refs: list[tuple[str, WorkerGroup]] = [(f"task '{t.id}'", t.workerGroup) for t in flow.all_tasks() if t.workerGroup]
    if flow.workerGroup:
        refs.append(("the flow", flow.workerGroup))
    refs += [(f"trigger '{t.id}'", t.workerGroup) for t in flow.triggers if getattr(t, "workerGroup", None)]
    for where, ref in refs:
        if any(marker in ref.key for marker in TEMPLATE_MARKERS):
            continue
        try:
            check_group(settings, ref.key)
        except UnknownWorkerGroup as exc:
            yield f"{where}: {exc}"
