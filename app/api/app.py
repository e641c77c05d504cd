"""`create_app(settings)`: the FastAPI app, its life cycle, middleware and routers."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from app.api import docs, feedback, model, ops, scoring
from app.api.deps import GUARDED
from app.api.errors import install_error_handlers
from app.api.middleware import BodyLimitMiddleware, MetricsMiddleware
from app.service import TriageService
from app.settings import Settings
from app.telemetry import Metrics
from app.web import routes as web

DOCS_ASSETS = Path(fastapi_offline.__file__).with_name("static")  # Swagger UI and ReDoc, shipped by a package: no CDN
PAGE_ASSETS = Path(web.__file__).with_name("static")

API_VERSION = "1"
ROUTE_PATHS = (
    "/v1/score",
    "/v1/score/batch",
    "/v1/score/csv",
    "/v1/explain",
    "/v1/feedback",
    "/v1/model",
    "/v1/model/reload",
    "/healthz",
    "/readyz",
    "/metrics",
)
_BUILT_IN_DOCS_OFF: dict[str, Any] = {"docs_url": None, "redoc_url": None, "openapi_url": None}  # app.api.docs serves them
DESCRIPTION = """
Triage received LinkedIn invites and messages: **genuine**, **sales_pitch** or **spam**,
with the three class scores and the evidence behind every verdict.

Allow/deny lists (`TRIAGE_LISTS_FILE`) are applied before the model. When
`TRIAGE_API_TOKEN` is set, every endpoint but `/healthz` and `/readyz` needs
`Authorization: Bearer <token>`. Errors are JSON naming the field or row at fault.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app; the model is loaded once, in the lifespan, and shared by every request."""
    settings = settings or Settings.from_env()
    service = TriageService(settings)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(service.start)
        try:
            yield
        finally:
            await run_in_threadpool(service.stop)

    app = FastAPI(
        title="inbound-triage",
        version=API_VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        **_BUILT_IN_DOCS_OFF,
        redirect_slashes=False,  # a redirect would echo the Host header back
    )
    app.state.service = service
    app.state.metrics = metrics
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
        upload_paths=frozenset({"/v1/score/csv"}),
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics, known_paths=frozenset(ROUTE_PATHS))
    # The page keeps the API token in a signed session cookie; a fresh secret per process unless one is set.
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.session_secret or secrets.token_urlsafe(32),
        session_cookie="triage_session",
        same_site="strict",
        https_only=False,
    )
    install_error_handlers(app)
    for router in (scoring.router, feedback.router, model.router, ops.router, docs.router, web.router):
        app.include_router(router)
    app.mount(docs.ASSETS_URL, StaticFiles(directory=DOCS_ASSETS), name="docs-assets")
    app.mount("/static", StaticFiles(directory=PAGE_ASSETS), name="page-assets")

    if settings.bench:
        constant = b'{"ok":true}'

        @app.post("/v1/_bench/constant", include_in_schema=False, dependencies=GUARDED)
        async def bench_constant() -> Response:
            return Response(constant, media_type="application/json")

    return app
