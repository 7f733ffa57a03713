"""JSON schema of a flow file (every task type with its properties), for editors such as VS Code's YAML plugin."""

from __future__ import annotations

from typing import Any

from app.flow import Flow


def flow_json_schema() -> dict[str, Any]:
    from app import registry  # noqa: F401  (the task union must be built first)

    schema = Flow.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Celestra flow"
    return schema
