"""The REST API on Kestra's paths (`/api/v1/...`, with or without the `main` tenant segment) and JSON shapes, so
Kestra's own clients work against Celestra: a FastAPI app that `celestra server` serves beside the executor and
`celestra webserver` serves alone (to scale apart). Every path but `/health`, the OpenAPI document and its
docs page, and the Webhook trigger's (its key is its credential) needs a caller (app/api/auth.py).

What it does goes through the same Client and store as the CLI: one way for data to flow.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from app.api import cluster, executions, files, flows, logs, ui, webhooks
from app.api.auth import require_caller
from app.errors import CelestraError, NotFoundError
from app.settings import Settings

log = logging.getLogger("celestra.api")
TENANT = "main"  # Kestra's open-source tenant: its clients always name it


def create_app() -> FastAPI:
    app = FastAPI(title="Celestra", description="Kestra-style YAML flows on Celery", version="1",
                  openapi_url="/api/v1/openapi.json", docs_url="/api/v1/docs", redoc_url=None)
    api = APIRouter(dependencies=[Depends(require_caller)])
    for router in (flows.router, executions.router, logs.router, files.router, cluster.router):
        api.include_router(router)
    app.include_router(api, prefix="/api/v1")
    app.include_router(api, prefix=f"/api/v1/{TENANT}", include_in_schema=False)
    # Outside `api`: a Webhook's key is its credential (no route of `api` has its shape, so none shadows it).
    app.include_router(webhooks.router, prefix="/api/v1")
    app.include_router(webhooks.router, prefix=f"/api/v1/{TENANT}", include_in_schema=False)

    app.include_router(ui.router)  # the web UI: pages and assets under /ui, behind the same credentials

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "UP"}

    @app.exception_handler(HTTPException)
    async def kestra_error(request: Request, exc: HTTPException) -> JSONResponse:
        # Kestra answers {"message": ...}; a detail that is already a mapping carries its own fields.
        body: dict[str, Any] = exc.detail if isinstance(exc.detail, dict) else {"message": str(exc.detail)}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(CelestraError)
    async def refused(request: Request, exc: CelestraError) -> JSONResponse:
        return JSONResponse({"message": str(exc)}, status_code=404 if isinstance(exc, NotFoundError) else 422)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"message": "; ".join(problems)}, status_code=422)

    return app


def serve(settings: Settings, *, background: bool = False) -> threading.Thread | None:
    """Serve the API on settings.api_host:api_port (uvicorn); `background`: on a daemon thread, for `celestra
    server`, which runs the executor in the foreground."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(create_app(), host=settings.api_host, port=settings.api_port,
                                           log_level="info", access_log=False))
    if not background:
        server.run()
        return None

    def run() -> None:
        with contextlib.suppress(SystemExit):  # uvicorn exits when it cannot bind
            server.run()
        if not server.started:  # the port is taken, say: a server without its API must not go on unnoticed
            log.critical("the REST API could not listen on %s:%s; stopping (api_port 0 serves no API)",
                         settings.api_host, settings.api_port)
            os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=run, name="celestra-api", daemon=True)
    thread.start()
    return thread
