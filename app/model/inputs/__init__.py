"""Kestra flow inputs: declarations (one pydantic model per ``type``) and resolution of given values.

Values come from a CLI/HTTP form (strings) or from Python (native values); each type coerces both forms to
one canonical value so tasks and templates see the same thing whichever way an execution was started.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from app import templating
from app.model.inputs.scalars import (
    BooleanInput,
    DateInput,
    DateTimeInput,
    DurationInput,
    FloatInput,
    Input,
    IntInput,
    SecretInput,
    StringInput,
    TimeInput,
)
from app.model.inputs.structured import (
    ArrayInput,
    EmailInput,
    FileInput,
    JsonInput,
    MultiselectInput,
    SelectInput,
    UriInput,
    YamlInput,
)
from app.model.inputs.values import InputError, InvalidValue, StoreFile

__all__ = [
    "ArrayInput", "BooleanInput", "DateInput", "DateTimeInput", "DurationInput", "EmailInput", "FileInput",
    "FloatInput", "Input", "InputDef", "InputError", "IntInput", "JsonInput", "MultiselectInput", "SecretInput",
    "SelectInput", "StoreFile", "StringInput", "TimeInput", "UriInput", "YamlInput", "coerce_output",
    "dependency_order", "dependency_problems", "parse_input", "resolve_inputs",
]

InputDef = Annotated[
    StringInput | SecretInput | IntInput | FloatInput | BooleanInput | DateTimeInput | DateInput | TimeInput
    | DurationInput | JsonInput | YamlInput | UriInput | EmailInput | SelectInput | MultiselectInput
    | ArrayInput | FileInput,
    Field(discriminator="type"),
]

_INPUT_ADAPTER: TypeAdapter[InputDef] = TypeAdapter(InputDef)


def parse_input(data: Mapping[str, Any]) -> InputDef:
    """Validate one raw declaration (as loaded from flow YAML); raises pydantic.ValidationError."""
    return _INPUT_ADAPTER.validate_python(data)


def _is_missing(definition: Input, value: Any) -> bool:
    return value is None or (definition.blank_is_missing and isinstance(value, str) and not value.strip())


def resolve_inputs(
    defs: Sequence[InputDef], given: Mapping[str, Any], *, store_file: StoreFile | None = None,
    variables: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Coerce given values (or defaults) for every declared input that is on.

    Returns one entry per input that is on, None for an optional input without value; an input whose `dependsOn`
    condition renders false (rendered with `variables` and the `inputs` it depends on) is off and left out, as in
    Kestra. Undeclared keys of ``given`` are ignored like Kestra does. All problems are reported together, one
    line per input.
    """
    resolved: dict[str, Any] = {}
    off: set[str] = set()
    errors: list[InputError] = []
    for definition in dependency_order(defs):
        try:
            if not _is_on(definition, resolved, off, variables or {}):
                off.add(definition.id)
                continue
        except InvalidValue as exc:
            errors.append(InputError(definition.id, f"Input {definition.label}: {exc}"))
            continue
        raw = given.get(definition.id)
        from_default = _is_missing(definition, raw)
        if from_default:
            raw = definition.initial()
        if _is_missing(definition, raw):
            resolved[definition.id] = None
            if definition.required:
                errors.append(InputError(definition.id, f"Missing required input {definition.label}"))
            continue
        try:
            if isinstance(definition, FileInput):
                resolved[definition.id] = definition.coerce(raw, store_file)
            else:
                resolved[definition.id] = definition.coerce(raw)
        except InvalidValue as exc:
            where = " (default value)" if from_default else ""
            errors.append(InputError(definition.id, f"Invalid input {definition.label}{where}: {exc}"))
    if errors:
        by_position = {d.id: i for i, d in enumerate(defs)}
        errors.sort(key=lambda err: by_position.get(err.input_id, 0))
        message = "\n".join(str(err) for err in errors)
        raise InputError(errors[0].input_id, message, errors)
    return {d.id: resolved[d.id] for d in defs if d.id in resolved}


def dependency_order(defs: Sequence[InputDef]) -> list[InputDef]:
    """The inputs with each one after those of its `dependsOn.inputs` (declaration order otherwise). The flow's
    validation refuses unknown ids and cycles (dependency_problems), so every input is placed."""
    by_id = {d.id: d for d in defs}
    placed: dict[str, InputDef] = {}

    def place(definition: InputDef, path: tuple[str, ...]) -> None:
        if definition.id in placed or definition.id in path:
            return
        for needed in definition.depends_on.inputs if definition.depends_on else []:
            if needed in by_id:
                place(by_id[needed], (*path, definition.id))
        placed[definition.id] = definition

    for definition in defs:
        place(definition, ())
    return list(placed.values())


def dependency_problems(defs: Sequence[InputDef]) -> list[tuple[str, str]]:
    """What is wrong with the inputs' `dependsOn` (Kestra's wording), as (input id, problem): unknown inputs and
    cycles."""
    by_id = {d.id: d for d in defs}
    problems: list[tuple[str, str]] = []
    for definition in defs:
        for needed in definition.depends_on.inputs if definition.depends_on else []:
            if needed not in by_id:
                problems.append((definition.id,
                                 f"Input with id '{definition.id}' depends on a non-existent input '{needed}'."))
    for definition in defs:
        cycle = _cycle_from(definition.id, by_id, [])
        if cycle:
            problems.append((definition.id, f"Cycle dependency detected for input with id '{definition.id}': {cycle}"))
    return problems


def _cycle_from(current: str, by_id: Mapping[str, InputDef], path: list[str]) -> list[str] | None:
    if current in path:
        return [*path[path.index(current):], current] if path[0] == current else None
    definition = by_id.get(current)
    for needed in definition.depends_on.inputs if definition and definition.depends_on else []:
        found = _cycle_from(needed, by_id, [*path, current])
        if found:
            return found
    return None


def _is_on(definition: InputDef, resolved: Mapping[str, Any], off: set[str], variables: Mapping[str, Any]) -> bool:
    depends = definition.depends_on
    if depends is None:
        return True
    if any(needed in off for needed in depends.inputs):  # what it depends on is not asked for: neither is it
        return False
    if depends.condition is None or isinstance(depends.condition, bool):
        return depends.condition is not False
    scope = {**variables, "inputs": {needed: resolved.get(needed) for needed in depends.inputs}}
    try:
        return templating.is_truthy(templating.render_value(depends.condition, scope))
    except templating.TemplateError as exc:
        raise InvalidValue(f"dependsOn condition: {exc}") from None


def coerce_output(output_id: str, type_name: str, value: Any) -> Any:
    """A flow output's rendered value as its declared type (Kestra types outputs like inputs: an INT output is an
    int). A FILE output stays the URI it rendered to; a typed one that renders blank has no value (None), as a
    blank typed input has none; a value that does not fit raises InputError."""
    if value is None or type_name in ("FILE", "SECRET"):
        return value
    try:
        definition = parse_input({"id": output_id, "type": type_name})
    except Exception:  # a type only outputs use: kept as rendered
        return value
    if _is_missing(definition, value):
        return None
    try:
        return definition.coerce(value)
    except InvalidValue as exc:
        raise InputError(output_id, f"Output '{output_id}' is not a valid {type_name}: {exc}") from None
