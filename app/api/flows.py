"""`/api/v1/flows`: create, read, update, delete, search, validate flows, and their revisions, as Kestra's API."""

from __future__ import annotations

from typing import Any

import yaml
from fastapi import APIRouter, HTTPException, Request, Response
from starlette.concurrency import run_in_threadpool

from app import runtime
from app.api import shapes
from app.api.queries import SearchQuery
from app.client import Client
from app.engine import flow_triggers
from app.errors import FlowValidationError, NotFoundError

router = APIRouter(tags=["Flows"])


async def _yaml_body(request: Request) -> str:
    try:
        text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(400, "the flow's YAML source must be UTF-8") from None
    if not text.strip():
        raise HTTPException(422, "the request body must be the flow's YAML source")
    # A text without a line break is a file path to Client.load: never so for a body that came over HTTP.
    return text if text.endswith("\n") else text + "\n"


def _load(text: str) -> tuple[Any, str]:
    try:
        return Client().load(text)
    except FlowValidationError as exc:
        message = "Invalid flow: " + "; ".join(exc.problems)
        raise HTTPException(422, {"message": message, "errors": exc.problems}) from None


def _stored(namespace: str, flow_id: str, revision: int | None = None, with_source: bool = True) -> dict[str, Any]:
    try:
        rev, source = runtime.store().get_flow(namespace, flow_id, revision)
    except NotFoundError:
        raise HTTPException(404, f"Flow {namespace}.{flow_id} not found") from None
    return shapes.flow(namespace, flow_id, rev, source, with_source=with_source)


def _save(flow: Any, source: str) -> dict[str, Any]:
    runtime.store().save_flow(flow.namespace, flow.id, source)
    flow_triggers.deployed_flows.forget_listing()
    return _stored(flow.namespace, flow.id)


@router.post("/flows")
async def create_flow(request: Request) -> dict[str, Any]:
    text = await _yaml_body(request)

    def create() -> dict[str, Any]:
        flow, source = _load(text)
        if runtime.store().flow_revisions(flow.namespace, flow.id):
            raise HTTPException(422, f"Flow id already exists: {flow.namespace}.{flow.id} (PUT updates it)")
        return _save(flow, source)

    return await run_in_threadpool(create)


@router.post("/flows/validate")
async def validate_flows(request: Request) -> list[dict[str, Any]]:
    """Each YAML document of the body (separated by `---`) checked; `constraints` says what is wrong."""
    text = await _yaml_body(request)
    return await run_in_threadpool(_validate, text)


def _validate(text: str) -> list[dict[str, Any]]:
    results = []
    for index, document in enumerate(part for part in text.split("\n---") if part.strip()):
        try:
            data = yaml.safe_load(document)
        except yaml.YAMLError:
            data = None  # the loader below says where
        named = data if isinstance(data, dict) else {}
        result: dict[str, Any] = {"index": index, "flow": named.get("id"), "namespace": named.get("namespace"),
                                  "outdated": False, "deprecationPaths": [], "warnings": [], "infos": []}
        try:
            Client().load(document if document.endswith("\n") else document + "\n")
        except FlowValidationError as exc:
            result["constraints"] = "\n".join(exc.problems)
        results.append(result)
    return results


@router.get("/flows/search")
def search_flows(query: SearchQuery) -> dict[str, Any]:
    if query.states:
        raise HTTPException(400, "flows have no state to search by")
    found = runtime.store().list_flows()
    if query.namespace:  # with its child namespaces, as Kestra's search
        found = [f for f in found if f["namespace"] == query.namespace
                 or f["namespace"].startswith(query.namespace + ".")]
    if query.flow_id:
        found = [f for f in found if f["id"] == query.flow_id]
    if query.text:
        found = [f for f in found if query.text.lower() in f"{f['namespace']}.{f['id']}".lower()]
    page = found[(query.page - 1) * query.size: query.page * query.size]
    return {"results": [_stored(f["namespace"], f["id"], with_source=False) for f in page], "total": len(found)}


@router.get("/flows/{namespace}")
def namespace_flows(namespace: str) -> list[dict[str, Any]]:
    return [_stored(f["namespace"], f["id"], with_source=False) for f in runtime.store().list_flows(namespace)]


@router.get("/flows/{namespace}/{flow_id}")
def get_flow(namespace: str, flow_id: str, revision: int | None = None, source: bool = True) -> dict[str, Any]:
    return _stored(namespace, flow_id, revision, with_source=source)


@router.put("/flows/{namespace}/{flow_id}")
async def update_flow(namespace: str, flow_id: str, request: Request) -> dict[str, Any]:
    text = await _yaml_body(request)

    def update() -> dict[str, Any]:
        flow, source = _load(text)
        if (flow.namespace, flow.id) != (namespace, flow_id):
            raise HTTPException(422, f"the body is flow {flow.namespace}.{flow.id}, the path names "
                                     f"{namespace}.{flow_id}")
        if not runtime.store().flow_revisions(namespace, flow_id):
            raise HTTPException(404, f"Flow {namespace}.{flow_id} not found (POST /flows creates it)")
        return _save(flow, source)

    return await run_in_threadpool(update)


@router.delete("/flows/{namespace}/{flow_id}", status_code=204)
def delete_flow(namespace: str, flow_id: str) -> Response:
    if not runtime.store().delete_flow(namespace, flow_id):
        raise HTTPException(404, f"Flow {namespace}.{flow_id} not found")
    flow_triggers.deployed_flows.forget_listing()
    return Response(status_code=204)


@router.get("/flows/{namespace}/{flow_id}/revisions")
def flow_revisions(namespace: str, flow_id: str) -> list[dict[str, Any]]:
    revisions = runtime.store().flow_revisions(namespace, flow_id)
    if not revisions:
        raise HTTPException(404, f"Flow {namespace}.{flow_id} not found")
    return [shapes.flow(namespace, flow_id, r["revision"], r["source"], updated=r["created"]) for r in revisions]
