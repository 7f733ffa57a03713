"""Every property of the flow language has its Kestra behaviour, tested, or is refused: never accepted silently.

The properties are walked from `Flow` through every annotation (unions, lists, dicts, Annotated, the registered task
types, inputs, triggers, conditions, retry, worker groups) and through the property models of the registered task
runners. `field_table.TABLE` maps each "Model.field" to the test that exercises it or to REFUSED (validation says
"not supported yet" when it is set); `SILENT_GAPS` below lists what is accepted and has no behaviour yet, and
`test_no_property_is_accepted_silently` fails until that list is empty.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import itertools
from collections.abc import Iterator
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Annotated, Any, ForwardRef, Literal, get_args, get_origin

import pytest
import yaml
from field_table import REFUSED
from field_table import TABLE as LISTED
from pydantic import BaseModel
from pydantic.fields import FieldInfo

import runners
from app.errors import FlowValidationError
from app.model.flow import Flow, Retry, Task
from app.model.flowables import DagTask
from app.model.for_each_item import Internal
from app.model.loader import load_flow
from app.model.registry import registry, type_names
from app.model.triggers import FlowTrigger
from app.model.webhook import WEBHOOK_TYPES, WebhookTrigger

ROOT = Path(__file__).resolve().parents[2]
RETURN = "io.kestra.plugin.core.debug.Return"

# The pydantic model each registered task runner validates its `taskRunner` properties with (None: it takes none).
RUNNER_OPTIONS: dict[str, str | None] = {
    "runners.process:ProcessRunner": None,
    "runners.docker:DockerRunner": "runners.docker:DockerOptions",
    "runners.aws_batch:AwsBatchRunner": "runners.aws_batch:BatchOptions",
    "runners.gcp_batch:GcpBatchRunner": "runners.gcp_batch:GcpBatchOptions",
}

# A value other than the default for each REFUSED property that is not a boolean (booleans are set to true).
REFUSED_VALUES: dict[str, Any] = {
    "WebhookTrigger.conditions": [{"type": "io.kestra.plugin.core.condition.ExecutionStatus", "in": ["FAILED"]}],
    "Subflow.scheduleDate": "2030-01-01T00:00:00Z", "ForEachItem.scheduleDate": "2030-01-01T00:00:00Z",
    "ForEachItem.restartBehavior": "NEW_EXECUTION",
    "ForEachItem.retry": {"type": "constant", "interval": "PT1S", "maxAttempt": 2},
    "Pause.retry": {"type": "constant", "interval": "PT1S", "maxAttempt": 2},
    "Pause.errors": [{"id": "handler", "type": RETURN, "format": "x"}],
    "Pause.finally_": [{"id": "after", "type": RETURN, "format": "x"}],
    "Subflow.errors": [{"id": "handler", "type": RETURN, "format": "x"}],
    "Subflow.finally_": [{"id": "after", "type": RETURN, "format": "x"}],
    "LoopUntil.timeout": "PT1M", "ForEachItem.timeout": "PT1M", "Subflow.timeout": "PT1M",
    **{f"{model}.workerGroup": {"key": "gpu"} for model in (
        "Sequential", "AllowFailure", "Parallel", "If", "Switch", "ForEach", "EachSequential", "EachParallel", "Dag",
        "LoopUntil", "ForEachItem", "Pause", "Subflow")},
    "FlowTrigger.preconditions": {"id": "both", "flows": []},
    "IonToCsv.timeFormat": "HH:mm",
}


# -- what is accepted and has no behaviour yet: test_no_property_is_accepted_silently fails while any is listed.
# A property lands here only with the reason it cannot have its behaviour yet; better, refuse it (REFUSED).
TABLE = LISTED
SILENT_GAPS: dict[str, str] = {}


# -- the walk ----------------------------------------------------------------------------------------------------
def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    """The pydantic models an annotation can hold, through unions, containers and Annotated metadata."""
    if isinstance(annotation, str | ForwardRef):
        raise AssertionError(f"unresolved annotation {annotation!r}: the model was not rebuilt")
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    elif isinstance(annotation, FieldInfo):
        if annotation.annotation is not None:
            yield from _models_in(annotation.annotation)
    elif get_origin(annotation) is Annotated:
        yield from _models_in(annotation.__origin__)
        for meta in annotation.__metadata__:
            if isinstance(meta, FieldInfo):
                yield from _models_in(meta)
    elif get_origin(annotation) is not Literal:
        for arg in get_args(annotation):
            yield from _models_in(arg)


def runner_option_models() -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    for name, entry in sorted(runners.registered().items()):
        target = entry.value.split(" ")[0]
        assert target in RUNNER_OPTIONS, (f"task runner '{name}' ({target}) is not in RUNNER_OPTIONS: name the model "
                                          "of its properties (or None) so that they are walked too")
        if RUNNER_OPTIONS[target] is not None:
            module, attribute = str(RUNNER_OPTIONS[target]).split(":")
            model = getattr(importlib.import_module(module), attribute)
            if model not in found:
                found.append(model)
    return found


@cache
def walked() -> dict[str, tuple[type[BaseModel], str]]:
    """"Model.field" -> (model, field name) for every field of every model reachable from a flow."""
    models: list[type[BaseModel]] = []
    pending: list[type[BaseModel]] = [Flow, *registry().by_type.values(), *runner_option_models()]
    while pending:
        model = pending.pop(0)
        if model in models:
            continue
        models.append(model)
        for field in model.model_fields.values():
            pending.extend(m for m in _models_in(field.annotation) if m not in models)
    names = [m.__name__ for m in models]
    found = {}
    for model in models:
        label = model.__name__ if names.count(model.__name__) == 1 else f"{model.__module__}.{model.__name__}"
        for field in model.model_fields:
            found[f"{label}.{field}"] = (model, field)
    return found


def declaration(name: str) -> str:
    """file:line where a walked field is declared (in the class of the MRO that annotates it)."""
    model, field = walked()[name]
    owner = next(c for c in model.__mro__ if field in c.__dict__.get("__annotations__", {}))
    lines, start = inspect.getsourcelines(owner)
    for node in ast.walk(ast.parse("".join(lines))):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == field:
            return f"{Path(inspect.getfile(owner)).relative_to(ROOT)}:{start + node.lineno - 1}"
    return f"{Path(inspect.getfile(owner)).relative_to(ROOT)}:{start}"


# -- minimal flows -------------------------------------------------------------------------------------------------
_ids = itertools.count()
MINIMAL_OVERRIDES: dict[str, dict[str, Any]] = {"Split": {"rows": 1}}  # what a bare required field cannot say


def return_task() -> dict[str, Any]:
    return {"id": f"r{next(_ids)}", "type": RETURN, "format": "x"}


def _sample(annotation: Any) -> Any:
    models = list(_models_in(annotation))
    if any(issubclass(m, Task) for m in models):
        return [return_task()]
    if DagTask in models:
        return [{"task": return_task()}]
    if annotation is timedelta:
        return "PT0S"
    return ["x"] if get_origin(annotation) is list else "x"


def minimal_task(cls: type[Task], task_id: str | None = None) -> dict[str, Any]:
    """The smallest valid declaration of a task type: its required properties, each with a plain value."""
    task: dict[str, Any] = {"id": task_id or f"t{next(_ids)}", "type": type_names(cls)[0]}
    for name, field in cls.model_fields.items():
        if field.is_required() and name not in ("id", "type"):
            task[field.alias or name] = _sample(field.annotation)
    return {**task, **MINIMAL_OVERRIDES.get(cls.__name__, {})}


def task_classes() -> list[type[Task]]:
    """Every task type a flow may name (ForEachItem's internal ones are made by it, refused when written)."""
    return [cls for cls in dict.fromkeys(registry().by_type.values()) if not issubclass(cls, Internal)]


def placed(model: type[BaseModel], values: dict[str, Any]) -> dict[str, Any]:
    """A minimal flow holding one `model` with these properties."""
    flow: dict[str, Any] = {"id": "every_field", "namespace": "unit.every_field", "tasks": [return_task()]}
    if model is Flow:
        flow.update(values)
    elif issubclass(model, Task):
        flow["tasks"] = [{**minimal_task(model), **values}]
    elif model is Retry:
        flow["tasks"][0]["retry"] = {"type": "constant", "interval": "PT1S", "maxAttempt": 2, **values}
    elif model is FlowTrigger:
        flow["triggers"] = [{"id": "watch", "type": get_args(FlowTrigger.model_fields["type"].annotation)[0],
                             **values}]
    elif model is WebhookTrigger:
        flow["triggers"] = [{"id": "hook", "type": WEBHOOK_TYPES[0], "key": "k3y", **values}]
    else:
        raise AssertionError(f"no minimal flow holds a {model.__name__} yet: teach `placed` where it goes")
    return flow


# -- the checks ----------------------------------------------------------------------------------------------------
def test_the_table_names_every_property_and_only_them() -> None:
    fields, listed = set(walked()), set(TABLE) | set(SILENT_GAPS)
    missing, stale = sorted(fields - listed), sorted(listed - fields)
    both = sorted(set(TABLE) & set(SILENT_GAPS))
    assert not missing, "properties without an entry in tests/unit/field_table.py (name the test that exercises " \
        f"each, or REFUSED): {missing}"
    assert not stale, f"entries (TABLE or SILENT_GAPS) for properties that no longer exist: {stale}"
    assert not both, f"both tested (or refused) and a silent gap: {both}"


@cache
def _functions(path: str) -> set[str]:
    tree = ast.parse((ROOT / path).read_text(), path)
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_every_named_test_exists() -> None:
    wrong = []
    for name, entry in sorted(TABLE.items()):
        if entry == REFUSED:
            continue
        path, _, function = entry.partition("::")
        if not (path.startswith("tests/") and (ROOT / path).is_file() and function.startswith("test_")
                and function in _functions(path)):
            wrong.append(f"{name}: {entry}")
    assert not wrong, f"these entries name no test function: {wrong}"


@pytest.mark.parametrize("name", sorted(name for name, entry in TABLE.items() if entry == REFUSED))
def test_a_refused_property_is_refused_saying_not_supported_yet(name: str) -> None:
    model, field = walked()[name]
    info = model.model_fields[field]
    key = info.alias or field
    default = info.get_default(call_default_factory=True)
    value = REFUSED_VALUES.get(name, True if default is False else None)
    assert value is not None and value != default, f"REFUSED_VALUES needs a value other than the default for {name}"
    load_flow(yaml.safe_dump(placed(model, {}), sort_keys=False))  # without it, the flow is fine
    with pytest.raises(FlowValidationError) as refused:
        load_flow(yaml.safe_dump(placed(model, {key: value}), sort_keys=False))
    assert "not supported yet" in str(refused.value) and key in str(refused.value), str(refused.value)


def test_every_runner_validates_its_properties_with_its_model() -> None:
    for name, entry in runners.registered().items():
        cls = runners.runner_class(name)
        options = RUNNER_OPTIONS[entry.value.split(" ")[0]]
        if options is None:
            with pytest.raises(TypeError):
                cls(anything="at all")  # no properties at all
        else:
            assert options.split(":")[1] in inspect.getsource(cls.__init__), name
            with pytest.raises(runners.RunnerError):
                cls(celestra_no_such_property=1)


def test_every_task_type_has_a_minimal_declaration_that_loads() -> None:
    flow = placed(Flow, {"tasks": [minimal_task(cls) for cls in task_classes()]})
    assert len(load_flow(yaml.safe_dump(flow, sort_keys=False)).tasks) == len(task_classes())


def test_no_property_is_accepted_silently() -> None:
    gaps = [f"{name} ({declaration(name)}): {why}" for name, why in sorted(SILENT_GAPS.items())]
    if gaps:
        pytest.fail(f"{len(gaps)} properties are accepted without their Kestra behaviour: implement them (and name "
                    "their test in field_table.py) or refuse them with not_supported_yet:\n" + "\n".join(gaps),
                    pytrace=False)
