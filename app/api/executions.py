"""`/api/v1/executions`: start a deployed flow (inputs as a multipart form, `wait` for its end), read and search
executions, kill, resume, restart and replay them, as Kestra's API."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from starlette.datastructures import UploadFile

from app import runtime
from app.api import shapes
from app.api.queries import SearchQuery
from app.client import Client
from app.errors import CelestraError, NotFoundError
from app.model.inputs import InputError
from app.model.storage_uri import is_storage_uri

router = APIRouter(tags=["Executions"])


async def form_inputs(request: Request, file_inputs: set[str]) -> dict[str, Any]:
    """The form's parts as inputs: a file part as (filename, bytes); a text part as text. A FILE input given as
    text must be a kestra:// URI: a path would read the server's own disk."""
    if not request.headers.get("content-type", "").startswith(("multipart/", "application/x-www-form-urlencoded")):
        return {}
    inputs: dict[str, Any] = {}
    for key, value in (await request.form()).multi_items():
        if isinstance(value, UploadFile):
            inputs[key] = (value.filename or key, await value.read())
        elif key in file_inputs and not is_storage_uri(value):
            raise HTTPException(422, f"input {key}: upload the file as a file part, or give a kestra:// URI")
        else:
            inputs[key] = value
    return inputs


def _labels(request: Request) -> dict[str, str]:
    labels = {}
    for given in request.query_params.getlist("labels"):
        key, sep, value = given.partition(":")
        if not sep or not key:
            raise HTTPException(422, f"label {given!r} must be key:value")
        labels[key] = value
    return labels


def _execution(execution_id: str) -> Any:
    try:
        return Client().get(execution_id)
    except NotFoundError:
        raise HTTPException(404, f"Execution {execution_id} not found") from None


def _shaped(ex: Any) -> dict[str, Any]:
    shaped = shapes.execution(ex)
    public = runtime.settings().public_url
    if public:
        shaped["url"] = f"{public.rstrip('/')}/ui/main/executions/{ex.namespace}/{ex.flow_id}/{ex.id}"
    return shaped


@router.get("/executions/search")
def search_executions(query: SearchQuery) -> dict[str, Any]:
    found, total = runtime.store().execution_page(query.namespace, query.flow_id, query.states, query.page,
                                                  query.size)
    return {"results": [_shaped(ex) for ex in found], "total": total}


@router.get("/executions")
def executions_of_flow(query: SearchQuery) -> dict[str, Any]:
    return search_executions(query)


@router.post("/executions/{namespace}/{flow_id}")
async def create_execution(namespace: str, flow_id: str, request: Request, wait: bool = False,
                           revision: int | None = None) -> dict[str, Any]:
    client = Client()
    try:
        flow = client.flow(namespace, flow_id, revision)
    except NotFoundError:
        raise HTTPException(404, f"Flow {namespace}.{flow_id} not found") from None
    inputs = await form_inputs(request, {i.id for i in flow.inputs if i.type == "FILE"})
    try:
        ex = client.execute(namespace, flow_id, inputs, revision=revision, labels=_labels(request))
    except InputError as exc:
        raise HTTPException(422, f"Invalid inputs: {exc}") from None
    if wait:
        ex = client.wait(ex.id)
    return _shaped(ex)


@router.get("/executions/{execution_id}")
def get_execution(execution_id: str) -> dict[str, Any]:
    return _shaped(_execution(execution_id))


def _kill(execution_id: str) -> dict[str, Any]:
    ex = _execution(execution_id)
    if ex.state.terminal:
        raise HTTPException(409, f"Execution {execution_id} has ended already ({ex.state.value})")
    Client().cancel(execution_id)
    return _shaped(_execution(execution_id))


@router.delete("/executions/{execution_id}/kill", status_code=202)
def kill(execution_id: str) -> dict[str, Any]:
    return _kill(execution_id)


@router.delete("/executions/{execution_id}/actions/kill", status_code=202)
def kill_action(execution_id: str) -> dict[str, Any]:
    return _kill(execution_id)


async def _resume(execution_id: str, request: Request) -> dict[str, Any]:
    _execution(execution_id)
    try:
        if not Client().resume(execution_id, await form_inputs(request, set())):
            raise HTTPException(409, f"Execution {execution_id} is not paused")
    except InputError as exc:
        raise HTTPException(422, f"Invalid inputs: {exc}") from None
    return _shaped(_execution(execution_id))


@router.post("/executions/{execution_id}/resume")
async def resume(execution_id: str, request: Request) -> dict[str, Any]:
    return await _resume(execution_id, request)


@router.post("/executions/{execution_id}/actions/resume")
async def resume_action(execution_id: str, request: Request) -> dict[str, Any]:
    return await _resume(execution_id, request)


def _restart(execution_id: str) -> dict[str, Any]:
    _execution(execution_id)
    try:
        return _shaped(Client().restart(execution_id))
    except CelestraError as exc:
        raise HTTPException(409, str(exc)) from None


@router.post("/executions/{execution_id}/restart")
def restart(execution_id: str) -> dict[str, Any]:
    return _restart(execution_id)


@router.post("/executions/{execution_id}/actions/restart")
def restart_action(execution_id: str) -> dict[str, Any]:
    return _restart(execution_id)


@router.post("/executions/{execution_id}/replay")
def replay(execution_id: str, taskRunId: str | None = None) -> dict[str, Any]:  # noqa: N803 - Kestra's name
    _execution(execution_id)
    try:
        return _shaped(Client().replay(execution_id, taskRunId))
    except CelestraError as exc:
        raise HTTPException(409, str(exc)) from None
