"""Files and values kept beside executions, as Kestra's API serves them: an execution's files
(`/executions/{id}/file?path=kestra:///...`, only URIs under that execution), namespace files
(`/namespaces/{namespace}/files?path=...`: read, upload, delete; `/files/directory` lists) and the KV store
(`/namespaces/{namespace}/kv/{key}`)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from app import runtime
from app.errors import NotFoundError
from app.store.storage import (
    StorageError,
    StorageNotFoundError,
    execution_uri,
    namespace_file_uri,
    namespace_files_prefix,
)

router = APIRouter(tags=["Files"])


def _read(uri: str) -> Response:
    try:
        data = runtime.storage().get(uri)
    except StorageNotFoundError:
        raise HTTPException(404, f"No file {uri}") from None
    except StorageError as exc:
        raise HTTPException(422, str(exc)) from None
    name = uri.rsplit("/", 1)[-1]
    return Response(data, media_type="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/executions/{execution_id}/file")
def execution_file(execution_id: str, path: str) -> Response:
    try:
        ex = runtime.store().get_execution(execution_id, with_runs=False)
    except NotFoundError:
        raise HTTPException(404, f"Execution {execution_id} not found") from None
    own = execution_uri(ex.namespace, ex.flow_id, ex.id) + "/"
    if not path.startswith(own) or "/../" in path or path.endswith("/.."):
        raise HTTPException(422, f"{path} is not a file of execution {execution_id} (its files are under {own})")
    return _read(path)


def _namespace_uri(namespace: str, path: str) -> str:
    try:
        return namespace_file_uri(namespace, path.lstrip("/"))
    except StorageError as exc:
        raise HTTPException(422, str(exc)) from None


@router.get("/namespaces/{namespace}/files")
def namespace_file(namespace: str, path: str) -> Response:
    return _read(_namespace_uri(namespace, path))


@router.get("/namespaces/{namespace}/files/directory")
def namespace_directory(namespace: str) -> list[dict[str, Any]]:
    prefix = namespace_files_prefix(namespace) + "/"
    return [{"fileName": uri.rsplit("/", 1)[-1], "type": "File", "path": "/" + uri.removeprefix(prefix)}
            for uri in runtime.storage().list(namespace_files_prefix(namespace))]


@router.post("/namespaces/{namespace}/files", status_code=204)
async def upload_namespace_file(namespace: str, path: str, fileContent: UploadFile) -> Response:  # noqa: N803
    uri, data = _namespace_uri(namespace, path), await fileContent.read()
    await run_in_threadpool(runtime.storage().put, uri, data)
    return Response(status_code=204)


@router.delete("/namespaces/{namespace}/files", status_code=204)
def delete_namespace_file(namespace: str, path: str) -> Response:
    if not runtime.storage().delete(_namespace_uri(namespace, path)):
        raise HTTPException(404, f"No namespace file {path} in {namespace}")
    return Response(status_code=204)


@router.get("/namespaces/{namespace}/kv")
def kv_keys(namespace: str) -> list[dict[str, Any]]:
    return [{"key": key} for key in runtime.store().kv_keys(namespace, "")]


@router.get("/namespaces/{namespace}/kv/{key}")
def kv_get(namespace: str, key: str) -> dict[str, Any]:
    value = runtime.store().kv_get(namespace, key)
    if value is None:
        raise HTTPException(404, f"No key {key} in namespace {namespace}")
    return {"type": _kind(value), "value": value}


@router.put("/namespaces/{namespace}/kv/{key}", status_code=204)
async def kv_put(namespace: str, key: str, request: Request) -> Response:
    try:
        text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(400, "a KV value is UTF-8 text (JSON, or plain text)") from None
    try:
        value = json.loads(text)  # Kestra takes a JSON value; plain text is kept as a string
    except ValueError:
        value = text
    await run_in_threadpool(runtime.store().kv_put, namespace, key, value)
    return Response(status_code=204)


@router.delete("/namespaces/{namespace}/kv/{key}")
def kv_delete(namespace: str, key: str) -> bool:
    return runtime.store().kv_delete(namespace, key)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int | float):
        return "NUMBER"
    return "JSON" if isinstance(value, dict | list) else "STRING"
