"""`GET|POST|PUT /api/v1/executions/webhook/{namespace}/{flowId}/{key}`: Kestra's Webhook trigger. The key is
what authorizes the request (it needs no other credentials, as in Kestra); it is compared in constant time. One
request starts one execution; with the trigger's `wait` the answer waits for its end, with `returnOutputs` it is
the flow's outputs."""

from __future__ import annotations

import hmac
import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from app import runtime, templating
from app.api.executions import check_file_inputs, shaped
from app.client import Client
from app.errors import NotFoundError
from app.model.inputs import InputError
from app.model.loader import parse_flow
from app.model.webhook import WebhookTrigger

router = APIRouter(tags=["Webhooks"])
MAX_BODY = 10 * 1024 * 1024  # bytes of a request body a webhook takes


def _trigger_of(namespace: str, flow_id: str, key: str) -> tuple[Any, WebhookTrigger]:
    try:
        _, source = runtime.store().get_flow(namespace, flow_id)
    except NotFoundError:
        raise HTTPException(404, f"Flow {namespace}.{flow_id} not found") from None
    flow = parse_flow(source)
    found = [t for t in flow.triggers if isinstance(t, WebhookTrigger) and not t.disabled
             and hmac.compare_digest(t.key.encode(), key.encode())]
    if flow.disabled or not found:
        raise HTTPException(404, f"No enabled Webhook trigger of {namespace}.{flow_id} has this key")
    return flow, found[0]


def _body(raw: bytes) -> Any:
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text) if text.strip() else None
    except ValueError:
        return text


def _start(namespace: str, flow_id: str, key: str, variables: dict[str, Any]) -> dict[str, Any] | Any:
    flow, trigger = _trigger_of(namespace, flow_id, key)
    variables = {**variables, "id": trigger.id, "type": trigger.type}
    try:
        inputs = templating.render_value(trigger.inputs, {"trigger": variables})
        check_file_inputs(flow, inputs)  # a request's text naming a path must not read the server's disk
        client = Client()
        ex = client.execute(namespace, flow_id, inputs, trigger=variables)
    except (InputError, templating.TemplateError) as exc:
        raise HTTPException(422, f"Invalid inputs: {exc}") from None
    if not trigger.wait:
        return shaped(ex)
    ended = client.wait(ex.id)
    return ended.outputs if trigger.returnOutputs else shaped(ended)


@router.api_route("/executions/webhook/{namespace}/{flow_id}/{key}", methods=["GET", "POST", "PUT"])
async def webhook(namespace: str, flow_id: str, key: str, request: Request) -> Any:
    if int(request.headers.get("content-length") or 0) > MAX_BODY:
        raise HTTPException(413, f"a webhook's body is at most {MAX_BODY} bytes")
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise HTTPException(413, f"a webhook's body is at most {MAX_BODY} bytes")
    variables = {"body": _body(raw),
                 "headers": {name: request.headers.getlist(name) for name in request.headers},
                 "parameters": {name: request.query_params.getlist(name) for name in request.query_params}}
    return await run_in_threadpool(_start, namespace, flow_id, key, variables)
