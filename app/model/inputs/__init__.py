"""Kestra flow inputs: declarations (one pydantic model per ``type``) and resolution of given values.

Values come from a CLI/HTTP form (strings) or from Python (native values); each type coerces both forms to
one canonical value so tasks and templates see the same thing whichever way an execution was started.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

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
    "parse_input", "resolve_inputs",
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
    defs: Sequence[InputDef], given: Mapping[str, Any], *, store_file: StoreFile | None = None
) -> dict[str, Any]:
    """Coerce given values (or defaults) for every declared input.

    Returns one entry per declared input, None for an optional input without value; undeclared keys of
    ``given`` are ignored like Kestra does. All problems are reported together, one line per input.
    """
    values: dict[str, Any] = {}
    errors: list[InputError] = []
    for definition in defs:
        raw = given.get(definition.id)
        from_default = _is_missing(definition, raw)
        if from_default:
            raw = definition.initial()
        if _is_missing(definition, raw):
            values[definition.id] = None
            if definition.required:
                errors.append(InputError(definition.id, f"Missing required input '{definition.id}'"))
            continue
        try:
            if isinstance(definition, FileInput):
                values[definition.id] = definition.coerce(raw, store_file)
            else:
                values[definition.id] = definition.coerce(raw)
        except InvalidValue as exc:
            where = " (default value)" if from_default else ""
            errors.append(InputError(definition.id, f"Invalid input '{definition.id}'{where}: {exc}"))
    if errors:
        message = "\n".join(str(err) for err in errors)
        raise InputError(errors[0].input_id, message, errors)
    return values


def coerce_output(output_id: str, type_name: str, value: Any) -> Any:
    """A flow output's rendered value as its declared type (Kestra types outputs like inputs: an INT output is an
    int). A FILE output stays the URI it rendered to; a value that does not fit raises InputError."""
    if value is None or type_name in ("FILE", "SECRET"):
        return value
    try:
        definition = parse_input({"id": output_id, "type": type_name})
    except Exception:  # a type only outputs use: kept as rendered
        return value
    try:
        return definition.coerce(value)
    except InvalidValue as exc:
        raise InputError(output_id, f"Output '{output_id}' is not a valid {type_name}: {exc}") from None
