"""/openapi.json, /docs and /redoc: the API's own documentation, behind the token, from packaged assets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from app.api.deps import GUARDED

# Pages served here may load only from here: ReDoc's bundle would otherwise fetch its logo from a CDN.
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline' blob:; worker-src 'self' blob:; font-src 'self' data:; connect-src 'self'"
)
ASSETS_URL = "/static/docs"  # where create_app mounts fastapi-offline's copies of Swagger UI and ReDoc

router = APIRouter(include_in_schema=False, dependencies=GUARDED)


@router.get("/openapi.json")
async def openapi_schema(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
async def swagger_docs() -> HTMLResponse:
    return _page(
        get_swagger_ui_html,
        "swagger_favicon_url",
        swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
    )


@router.get("/redoc")
async def redoc_docs() -> HTMLResponse:
    return _page(get_redoc_html, "redoc_favicon_url", redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js", with_google_fonts=False)


def _page(render: Callable[..., HTMLResponse], favicon_param: str, **assets: Any) -> HTMLResponse:
    """One documentation page; the two renderers name their favicon parameter differently."""
    response = render(
        openapi_url="/openapi.json", title="inbound-triage", **{favicon_param: f"{ASSETS_URL}/favicon.png"}, **assets
    )
    response.headers["Content-Security-Policy"] = CSP
    return response
