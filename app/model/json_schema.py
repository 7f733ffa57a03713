"""JSON schema of a flow file (every task type with its properties), for editors such as VS Code's YAML plugin."""

from __future__ import annotations

from typing import Any

from app.model.flow import Flow
from app.model.registry import registry


def flow_json_schema() -> dict[str, Any]:
    registry()  # the task union must be built first
    schema = Flow.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Celestra flow"
    _accept_legacy_input_name(schema)
    return schema


def _accept_legacy_input_name(schema: dict[str, Any]) -> None:
    """Inputs may say `name:` instead of `id:` (Kestra's legacy key), as the loader accepts: one of the two."""
    from app.model.inputs import Input

    input_titles = {cls.__name__ for cls in _subclasses(Input)}
    for name, definition in schema.get("$defs", {}).items():
        props = definition.get("properties", {})
        if name not in input_titles or "id" not in props:
            continue
        props["name"] = {**props["id"], "description": "Legacy spelling of `id`."}
        definition["required"] = [r for r in definition.get("required", []) if r != "id"]
        definition["oneOf"] = [{"required": ["id"]}, {"required": ["name"]}]


def _subclasses(cls: type) -> list[type]:
    found: list[type] = []
    subclass: type
    for subclass in cls.__subclasses__():
        found += [subclass, *_subclasses(subclass)]
    return found
