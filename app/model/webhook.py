"""Kestra's Webhook trigger: an HTTP request to `/api/v1/executions/webhook/{namespace}/{flowId}/{key}` starts
one execution of the flow, with the request as `{{ trigger.body }}` (JSON parsed when it is JSON, else text),
`{{ trigger.headers }}` and `{{ trigger.parameters }}` (each name to a list of values). The `key` is what
authorizes the caller, so it should be long and random. The API serves it (app/api/webhooks.py)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

WEBHOOK_TYPES = ("io.kestra.plugin.core.trigger.Webhook", "io.kestra.core.models.triggers.types.Webhook")


class WebhookTrigger(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$")
    type: Literal["io.kestra.plugin.core.trigger.Webhook", "io.kestra.core.models.triggers.types.Webhook"]
    description: str | None = None
    disabled: bool = False
    key: str = Field(min_length=1, max_length=256, pattern=r"^[a-zA-Z0-9_.~-]+$")
    wait: bool = False  # answer once the execution has ended
    returnOutputs: bool = False  # with wait: answer the flow's outputs
    inputs: dict[str, Any] = Field(default_factory=dict)  # rendered with {{ trigger.* }}
    conditions: list[Any] = Field(default_factory=list)

    @field_validator("conditions")
    @classmethod
    def _no_conditions_yet(cls, value: list[Any]) -> list[Any]:
        if value:
            raise ValueError("conditions are not supported yet on a Webhook trigger")
        return value
