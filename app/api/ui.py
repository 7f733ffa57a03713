"""The web UI: one page and its script and style, shipped in the package (app/api/ui_assets/), no build step and
nothing from a CDN. The page reads everything through the REST API of this same server, so the UI can do nothing
the API does not; both ask for the same credentials (a browser asks for the basic-auth ones itself).

Paths are Kestra's UI paths (`/ui/main/executions/{namespace}/{flowId}/{id}`, the link `public_url` builds), so a
link written for Kestra's UI opens the same page here.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import RedirectResponse, Response

from app.api.auth import require_caller

router = APIRouter(dependencies=[Depends(require_caller)], include_in_schema=False)
ASSETS = resources.files("app.api") / "ui_assets"
TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
# Same-origin only: the page loads its own script and style and talks to its own API, nothing else.
HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
           "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}


def _asset(name: str) -> bytes:
    return (ASSETS / name).read_bytes()


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/ui/main/executions")


@router.get("/ui")
@router.get("/ui/")
def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/main/executions")


@router.get("/ui/assets/{name}")
def asset(name: str) -> Response:
    suffix = name[name.rfind("."):] if "." in name else ""
    if "/" in name or suffix not in TYPES or not (ASSETS / name).is_file():
        raise HTTPException(404, f"No asset {name}")
    return Response(_asset(name), media_type=TYPES[suffix], headers=HEADERS)


@router.get("/ui/{page:path}")
def page(page: str) -> Response:
    """Every page is the same document: its script draws what the path names."""
    return Response(_asset("index.html"), media_type="text/html", headers=HEADERS)
