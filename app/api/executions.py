"""`/api/v1/executions`: start a deployed flow (inputs as a multipart form, `wait` for its end), read and search
executions, kill, resume, restart and replay them, set their labels and delete them, as Kestra's API."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from app import runtime
from app.api import shapes
from app.api.queries import SearchQuery
from app.client import Client, with_secrets_marked
from app.errors import CelestraError, NotFoundError
from app.model.inputs import InputError
from app.model.loader import parse_flow
from app.model.storage_uri import is_storage_uri
from app.store.storage import execution_uri

router = APIRouter(tags=["Executions"])


async def form_inputs(request: Request, file_inputs: set[str]) -> dict[str, Any]:
    """The form's parts as inputs: a file part as (filename, bytes); a text part as text. A FILE input given as
    text must be a kestra:// URI: a path would read the server's own disk."""
    kind = request.headers.get("content-type", "").lower()
    if not kind.startswith(("multipart/", "application/x-www-form-urlencoded")):
        if await request.body():
            raise HTTPException(415, "inputs are sent as a multipart form (or url-encoded), one part per input")
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


def check_file_inputs(flow: Any, given: dict[str, Any]) -> None:
    """Over HTTP a FILE input is an uploaded file or a kestra:// URI, its default too: a path (given, or a
    default written in the flow) would read the API server's own disk."""
    for declared in flow.inputs:
        if declared.type != "FILE":
            continue
        value = given.get(declared.id, declared.defaults)
        if value is not None and not isinstance(value, tuple) and not is_storage_uri(value):
            raise HTTPException(422, f"input {declared.id}: a FILE input started over HTTP is an uploaded file or "
                                     "a kestra:// URI, not a path of the server")


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


def shaped(ex: Any) -> dict[str, Any]:
    shaped = shapes.execution(with_secrets_marked(ex))
    url = runtime.settings().execution_url(ex.namespace, ex.flow_id, ex.id)
    if url:
        shaped["url"] = url
    return shaped


@router.get("/executions/search")
def search_executions(query: SearchQuery) -> dict[str, Any]:
    if query.text:
        raise HTTPException(400, "a text search (q) of executions is not supported yet")
    found, total = runtime.store().execution_page(query.namespace, query.flow_id, query.states, query.page,
                                                  query.size)
    return {"results": [shaped(ex) for ex in found], "total": total}


@router.get("/executions")
def executions_of_flow(query: SearchQuery) -> dict[str, Any]:
    return search_executions(query)


@router.get("/executions/{execution_id}")
def get_execution(execution_id: str) -> JSONResponse:
    # Already JSON-safe: answered as is, not walked again by FastAPI's encoder (measured: 5x the store read for an
    # execution of 1,000 task runs, bench/bench_api.py).
    return JSONResponse(shaped(_execution(execution_id)))


def _kill(execution_id: str) -> dict[str, Any]:
    ex = _execution(execution_id)
    if ex.state.terminal:
        raise HTTPException(409, f"Execution {execution_id} has ended already ({ex.state.value})")
    Client().cancel(execution_id)
    return shaped(_execution(execution_id))


@router.delete("/executions/{execution_id}/kill", status_code=202)
def kill(execution_id: str) -> dict[str, Any]:
    return _kill(execution_id)


@router.delete("/executions/{execution_id}/actions/kill", status_code=202)
def kill_action(execution_id: str) -> dict[str, Any]:
    return _kill(execution_id)


async def _resume(execution_id: str, request: Request) -> dict[str, Any]:
    inputs = await form_inputs(request, set())

    def resume() -> dict[str, Any]:
        _execution(execution_id)
        try:
            if not Client().resume(execution_id, inputs):
                raise HTTPException(409, f"Execution {execution_id} is not paused")
        except InputError as exc:
            raise HTTPException(422, f"Invalid inputs: {exc}") from None
        return shaped(_execution(execution_id))

    return await run_in_threadpool(resume)


@router.post("/executions/{execution_id}/resume")
async def resume(execution_id: str, request: Request) -> dict[str, Any]:
    return await _resume(execution_id, request)


@router.post("/executions/{execution_id}/actions/resume")
async def resume_action(execution_id: str, request: Request) -> dict[str, Any]:
    return await _resume(execution_id, request)


def _restart(execution_id: str) -> dict[str, Any]:
    _execution(execution_id)
    try:
        return shaped(Client().restart(execution_id))
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
        return shaped(Client().replay(execution_id, taskRunId))
    except CelestraError as exc:
        raise HTTPException(409, str(exc)) from None


class Label(BaseModel):
    key: str
    value: str


def _set_labels(execution_id: str, labels: list[Label]) -> dict[str, Any]:
    given = {label.key: label.value for label in labels}
    if any(not key or key.startswith("system.") for key in given):
        raise HTTPException(400, "label keys must be non-empty, and system.* labels are read-only")
    try:
        runtime.store().set_labels(execution_id, given)
    except NotFoundError:
        raise HTTPException(404, f"Execution {execution_id} not found") from None
    except CelestraError as exc:
        raise HTTPException(400, str(exc)) from None
    return shaped(_execution(execution_id))


@router.post("/executions/{execution_id}/labels")
def set_labels(execution_id: str, labels: list[Label] = Body(...)) -> dict[str, Any]:  # noqa: B008 - FastAPI's way
    return _set_labels(execution_id, labels)


@router.post("/executions/{execution_id}/actions/labels")
def set_labels_action(execution_id: str, labels: list[Label] = Body(...)) -> dict[str, Any]:  # noqa: B008
    return _set_labels(execution_id, labels)


@router.delete("/executions/{execution_id}", status_code=204)
def delete_execution(execution_id: str, deleteLogs: bool = True, deleteMetrics: bool = True,  # noqa: N803
                     deleteStorage: bool = True) -> Response:  # noqa: N803 - Kestra's names
    """`deleteMetrics` changes nothing: Celestra keeps no metrics of an execution."""
    try:
        ex = runtime.store().delete_execution(execution_id, with_logs=deleteLogs)
    except NotFoundError:  # the store's lock says so: no read of the whole execution first
        raise HTTPException(404, f"Execution {execution_id} not found") from None
    except CelestraError as exc:
        raise HTTPException(409, str(exc)) from None
    if deleteStorage:
        storage = runtime.storage()
        for uri in storage.list(execution_uri(ex.namespace, ex.flow_id, ex.id)):
            storage.delete(uri)
    return Response(status_code=204)


# Last: its path would also match /executions/{id}/resume, /restart and /replay.
@router.post("/executions/{namespace}/{flow_id}")
async def create_execution(namespace: str, flow_id: str, request: Request, wait: bool = False,
                           revision: int | None = None) -> dict[str, Any]:
    try:
        rev, source = await run_in_threadpool(runtime.store().get_flow, namespace, flow_id, revision)
    except NotFoundError:
        raise HTTPException(404, f"Flow {namespace}.{flow_id} not found") from None
    flow = parse_flow(source)
    inputs = await form_inputs(request, {i.id for i in flow.inputs if i.type == "FILE"})
    labels = _labels(request)

    def start() -> dict[str, Any]:
        check_file_inputs(flow, inputs)
        client = Client()
        try:
            ex = client.execute(namespace, flow_id, inputs, revision=rev, labels=labels)
        except InputError as exc:
            raise HTTPException(422, f"Invalid inputs: {exc}") from None
        return shaped(client.wait(ex.id) if wait else ex)

    return await run_in_threadpool(start)
