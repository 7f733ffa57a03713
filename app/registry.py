"""Every task type, by each of its names; builds the discriminated union flows are validated against."""

from __future__ import annotations

import typing
from typing import Annotated, Any, Union, get_args

from pydantic import BaseModel, Field

from app import flow as flow_module
from app import flowables
from app.flow import Flow, Task
from app.inputs import InputDef
from app.triggers import AnyTrigger
from workers.plugins.core import RUNNABLE_TASKS

TASK_CLASSES: list[type[Task]] = [*RUNNABLE_TASKS, *flowables.FLOWABLE_TASKS]


def _extra_plugins() -> list[type[Task]]:
    """Families that live in optional modules (scripts, ...) register here when importable."""
    found: list[type[Task]] = []
    import importlib

    try:
        scripts = importlib.import_module("workers.plugins.scripts")
    except ImportError:
        return found
    found.extend(getattr(scripts, "SCRIPT_TASKS", []))
    return found


TASK_CLASSES.extend(_extra_plugins())

TYPE_NAMES: dict[str, type[Task]] = {}
for _task_cls in TASK_CLASSES:
    for _name in get_args(_task_cls.model_fields["type"].annotation):
        TYPE_NAMES[_name] = _task_cls

AnyTask = Annotated[Union[tuple(TASK_CLASSES)], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007

_namespace: dict[str, Any] = {"AnyTask": AnyTask, "InputDef": InputDef, "AnyTrigger": AnyTrigger}
_models: list[type[BaseModel]] = [*flowables.FLOWABLE_TASKS, flowables.DagTask]
for _model in _models:
    _model.model_rebuild(_types_namespace=_namespace, force=True)
setattr(flow_module, "AnyTask", AnyTask)  # noqa: B010  (the forward reference Flow's annotations name)
setattr(flow_module, "InputDef", InputDef)  # noqa: B010
setattr(flow_module, "AnyTrigger", AnyTrigger)  # noqa: B010
Flow.model_rebuild(_types_namespace=_namespace, force=True)


def task_class(type_name: str) -> type[Task] | None:
    return TYPE_NAMES.get(type_name)


__all__ = ["AnyTask", "TASK_CLASSES", "TYPE_NAMES", "task_class", "typing"]
