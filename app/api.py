"""The HTTP API: `create_app(settings)`. Routes parse, call the core (app.service), format.

Run it with `triage serve`, or `uvicorn app.api:create_app --factory`. Every error is
JSON (`ErrorOut`) naming the field or row at fault; validation errors are 422.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.features import SIGNAL_DESCRIPTIONS
from app.schemas import (
    BatchIn,
    BatchOut,
    ErrorOut,
    ExplainOut,
    FeedbackIn,
    FeedbackListOut,
    FeedbackOut,
    HealthOut,
    ItemIn,
    ModelOut,
    ReadyOut,
    ReloadOut,
    SignalOut,
    VerdictOut,
    explain_payload,
    scored_payload,
)
from app.service import Incoming, ModelUnavailable, Scored, TriageService, UploadError, score_upload
from app.settings import Settings
from app.telemetry import Metrics

log = logging.getLogger("triage.api")

API_VERSION = "1"
INLINE_TEXT_CHARS = 2_000  # longer items are scored in the thread pool, off the event loop
MULTIPART_OVERHEAD_BYTES = 64 * 1024
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
BEARER = HTTPBearer(auto_error=False, description="the TRIAGE_API_TOKEN value")
Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]

DESCRIPTION = """
Triage received LinkedIn invites and messages: **genuine**, **sales_pitch** or **spam**,
with the three class scores and the exact evidence behind every verdict.

Allow/deny lists (`TRIAGE_LISTS_FILE`) are applied before the model. When
`TRIAGE_API_TOKEN` is set, every endpoint but `/healthz` and `/readyz` needs
`Authorization: Bearer <token>`. Errors are JSON naming the field or row at fault.
"""


def _error(status: int, error: str, message: str, details: list[dict[str, Any]] | None = None, **kw: Any) -> JSONResponse:
    return JSONResponse({"error": error, "message": message, "details": details or []}, status_code=status, **kw)


def _fail(status: int, error: str, message: str, field: str | None = None) -> HTTPException:
    """An HTTPException carrying an ErrorOut body."""
    details = [{"field": field, "message": message, "type": error}] if field else []
    return HTTPException(status, detail={"error": error, "message": message, "details": details})


def _loc(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc)


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int, setting: str):
        message = f"request body is larger than the limit of {limit:,} bytes ({setting})"
        details = [{"field": "body", "message": message, "type": "payload_too_large"}]
        super().__init__(413, detail={"error": "payload_too_large", "message": message, "details": details})


class BodyLimitMiddleware:
    """413 for a body over the limit: from Content-Length at once, or while it streams in."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, max_upload_bytes: int, upload_paths: frozenset[str]):
        self.app = app
        self.max_body = max_body_bytes
        self.max_upload = max_upload_bytes + MULTIPART_OVERHEAD_BYTES
        self.upload_paths = upload_paths

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = scope["path"] in self.upload_paths
        limit, setting = (self.max_upload, "TRIAGE_MAX_UPLOAD_BYTES") if upload else (self.max_body, "TRIAGE_MAX_BODY_BYTES")
        shown = limit - MULTIPART_OVERHEAD_BYTES if upload else limit
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    exc = BodyTooLarge(shown, setting)
                    await JSONResponse(exc.detail, status_code=413)(scope, receive, send)
                    return
                break
        received = 0

        async def limited_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(shown, setting)
            return message

        await self.app(scope, limited_receive, send)


class MetricsMiddleware:
    """Counts every request by method, route template and status, and times it."""

    def __init__(self, app: ASGIApp, metrics: Metrics, known_paths: frozenset[str] = frozenset()):
        self.app = app
        self.metrics = metrics
        self.known_paths = known_paths  # requests refused before routing (413) still count under their route

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or (scope["path"] if scope["path"] in self.known_paths else "unmatched")
            self.metrics.observe_request(scope.get("method", ""), path, status, time.perf_counter() - start)


def _raw_json(payload: Any, status: int = 200) -> Response:
    """Serialise a payload already in a response model's shape (see app.schemas.*_payload)."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    return Response(body, status_code=status, media_type="application/json")


def _json(model: BaseModel, status: int = 200) -> Response:
    """Serialise a response model directly (the routes' fast path; the schema stays documented)."""
    return Response(model.model_dump_json(), status_code=status, media_type="application/json")


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "missing or wrong bearer token (only when TRIAGE_API_TOKEN is set)"},
    413: {"model": ErrorOut, "description": "body over the size limit"},
    422: {"model": ErrorOut, "description": "invalid request: `details` names each field"},
    503: {"model": ErrorOut, "description": "no verified model loaded yet"},
}


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

    guard_docs = bool(settings.api_token)  # with a token, the schema and docs are guarded like the rest
    app = FastAPI(
        title="inbound-triage",
        version=API_VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None if guard_docs else "/docs",
        redoc_url=None if guard_docs else "/redoc",
        openapi_url=None if guard_docs else "/openapi.json",
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
    _install_error_handlers(app)

    async def require_token(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> None:
        token = settings.api_token or ""
        given = credentials.credentials if credentials else ""
        if not given or not hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8")):
            raise HTTPException(
                401,
                detail={"error": "unauthorized", "message": "missing or wrong bearer token (Authorization: Bearer <token>)"},
                headers={"WWW-Authenticate": "Bearer"},
            )

    guarded = [Depends(require_token)] if settings.api_token else []

    if guard_docs:

        @app.get("/openapi.json", include_in_schema=False, dependencies=guarded)
        async def openapi_schema() -> JSONResponse:
            return JSONResponse(app.openapi())

        @app.get("/docs", include_in_schema=False, dependencies=guarded)
        async def swagger_docs() -> HTMLResponse:
            return get_swagger_ui_html(openapi_url="/openapi.json", title="inbound-triage")

    # -- helpers --------------------------------------------------------------------
    def incoming_of(item: ItemIn, where: str, keep_request: bool = False) -> Incoming:
        if len(item.text) > settings.max_text_chars:
            message = f"{len(item.text):,} characters, the limit is {settings.max_text_chars:,}"
            raise _fail(422, "string_too_long", message, f"{where}.text")
        for i, m in enumerate(item.thread):
            if len(m.text) > settings.max_text_chars:
                message = f"{len(m.text):,} characters, the limit is {settings.max_text_chars:,}"
                raise _fail(422, "string_too_long", message, f"{where}.thread.{i}.text")
        try:
            return item.to_incoming(keep_request)
        except ValueError as exc:
            raise _fail(422, "value_error", str(exc), where) from None

    def count(scored: Scored) -> None:
        metrics.observe_verdict(scored.verdict.verdict, scored.source, scored.verdict.needs_review)

    # -- scoring --------------------------------------------------------------------
    @app.post(
        "/v1/score",
        response_model=VerdictOut,
        tags=["scoring"],
        summary="Score one item",
        dependencies=guarded,
        responses=ERRORS,
    )
    async def score(item: ItemIn) -> Response:
        """The verdict, the three class scores, the top reasons and a one-sentence summary."""
        incoming = incoming_of(item, "body")
        if len(item.text) <= INLINE_TEXT_CHARS:
            scored = service.score(incoming)
        else:
            scored = await run_in_threadpool(service.score, incoming)
        count(scored)
        return _raw_json(scored_payload(scored))

    @app.post(
        "/v1/score/batch",
        response_model=BatchOut,
        tags=["scoring"],
        summary="Score up to 1,000 items",
        dependencies=guarded,
        responses=ERRORS,
    )
    async def score_batch(batch: BatchIn) -> Response:
        """Answers in the order of the items; one model version for the whole batch."""
        if len(batch.items) > settings.max_batch_items:
            raise _fail(422, "too_long", f"{len(batch.items):,} items, the limit is {settings.max_batch_items:,}", "body.items")
        incomings = [incoming_of(it, f"body.items.{i}") for i, it in enumerate(batch.items)]
        results = await run_in_threadpool(service.score_many, incomings)
        for s in results:
            count(s)
        return _raw_json({"count": len(results), "items": [scored_payload(s) for s in results]})

    @app.post(
        "/v1/score/csv",
        tags=["scoring"],
        summary="Score an uploaded inbox (CSV, JSONL or LinkedIn export); the scored CSV is streamed back",
        dependencies=guarded,
        responses={
            **ERRORS,
            200: {
                "content": {
                    "text/csv": {"example": "file,line,id,...,verdict,...,status,error\ninbox.csv,2,a1,...,genuine,...,scored,\n"}
                },
                "description": "the scored CSV: one row per input record",
            },
        },
        response_class=StreamingResponse,
    )
    async def score_upload_file(
        file: Annotated[UploadFile, File(description="the inbox: a CSV with a `text` column, JSONL, or a LinkedIn export")],
        format: Annotated[
            Literal["auto", "csv", "jsonl", "linkedin"], Form(description="detected from the content when auto")
        ] = "auto",
        me: Annotated[str | None, Form(max_length=300, description="LinkedIn export: the owner's name or profile URL")] = None,
    ) -> StreamingResponse:
        """The same reader as `triage score`: plain CSV (`text` plus optional `id`, `kind`,
        `sender_name`, `sender_headline`, `sender_profile_url`, `sender_connections`,
        `mutual_connections`, `sender_has_photo`, `sender_account_age_days`, `recipient_name`,
        `sent_at`, `connected_at`, `minutes_since_connected`, `prior_unanswered`; other columns,
        such as `sender_company`, are echoed), JSONL (one item per line) or a LinkedIn export.

        One output row per input record: its file, line and ids, the echoed columns, then the
        verdict, confidence, p_genuine, p_sales_pitch, p_spam, needs_review, reason_1..3,
        source, summary, model_version, `status` (scored, skipped or error) and `error`
        (for a bad row: its line and the field at fault).
        """
        data = await file.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:
            raise BodyTooLarge(settings.max_upload_bytes, "TRIAGE_MAX_UPLOAD_BYTES")
        name = Path(file.filename or "upload").name or "upload"
        try:
            chunks = await run_in_threadpool(score_upload, service, data, name, format, me, count)
        except UploadError as exc:
            raise _fail(422, "upload_error", str(exc), "file") from None
        return StreamingResponse(
            chunks,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="scored.csv"'},
        )

    @app.post(
        "/v1/explain",
        response_model=ExplainOut,
        tags=["scoring"],
        summary="The exact decomposition of every class's decision value",
        dependencies=guarded,
        responses=ERRORS,
    )
    async def explain(item: ItemIn) -> Response:
        """For every class: the intercept and every non-zero contribution, summing to its decision value."""
        explained = await run_in_threadpool(service.explain, incoming_of(item, "body"))
        return _raw_json(explain_payload(explained))

    # -- feedback -------------------------------------------------------------------
    @app.post(
        "/v1/feedback",
        response_model=FeedbackOut,
        status_code=201,
        tags=["feedback"],
        summary="Store an item with its correct label",
        dependencies=guarded,
        responses=ERRORS,
    )
    async def add_feedback(body: FeedbackIn) -> Response:
        """Stored in SQLite (TRIAGE_DB, WAL mode); retraining reads this store."""
        incoming = incoming_of(body.item, "body.item", keep_request=True)
        record = await run_in_threadpool(service.add_feedback, incoming, body.label, body.corrects, body.model_version)
        metrics.feedback.labels(record.label).inc()
        return _json(FeedbackOut.from_core(record), status=201)

    @app.get(
        "/v1/feedback",
        response_model=FeedbackListOut,
        tags=["feedback"],
        summary="List stored feedback, oldest first",
        dependencies=guarded,
        responses=ERRORS,
    )
    async def list_feedback(
        since: Annotated[datetime | None, Query(description="only feedback created at or after this time (ISO 8601)")] = None,
        after_id: Annotated[int | None, Query(ge=0, le=2**62, description="only feedback with a larger id (paging)")] = None,
        limit: Annotated[int, Query(ge=1, le=1000, description="at most this many, oldest first")] = 100,
    ) -> Response:
        try:
            records = await run_in_threadpool(service.list_feedback, since, limit, after_id)
        except (ValueError, OverflowError) as exc:
            raise _fail(422, "value_error", str(exc), "query.since") from None
        items = [FeedbackOut.from_core(r) for r in records]
        next_after = items[-1].id if len(items) == limit else None
        return _json(FeedbackListOut.model_construct(count=len(items), items=items, next_after_id=next_after))

    # -- the model ------------------------------------------------------------------
    @app.get(
        "/v1/model",
        response_model=ModelOut,
        tags=["model"],
        summary="The serving model's manifest",
        dependencies=guarded,
        responses=ERRORS,
    )
    async def model_card() -> Response:
        info = service.model_info()
        signals = info.pop("signals") or SIGNAL_DESCRIPTIONS
        info["signals"] = [SignalOut(name=k, description=v) for k, v in signals.items()]
        info.pop("version_dir", None)
        return _json(ModelOut.model_validate(info))

    @app.post(
        "/v1/model/reload",
        response_model=ReloadOut,
        tags=["model"],
        summary="Load the model the store points at now",
        dependencies=guarded,
        responses={**ERRORS, 409: {"model": ErrorOut, "description": "the new model failed verification; the current one stays"}},
    )
    async def reload_model() -> Response:
        """Swaps the new model in atomically; a model that fails verification is refused (409)."""
        result = await run_in_threadpool(service.models.reload)
        if not result.ok:
            kept = result.version or "no model"
            return _error(409, "model_refused", f"{result.message}; still serving {kept}")
        return _json(ReloadOut.from_core(result))

    # -- operations -----------------------------------------------------------------
    @app.get("/healthz", response_model=HealthOut, tags=["operations"], summary="Alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        response_model=ReadyOut,
        tags=["operations"],
        summary="Ready: a verified model is loaded",
        responses={503: {"model": ReadyOut, "description": "no verified model loaded"}},
    )
    async def readyz() -> Response:
        state = service.models.state
        if state is None:
            return _json(ReadyOut(status="not_ready", reason=service.models.last_error or "loading"), status=503)
        return _json(ReadyOut(status="ready", model_version=state.model.version))

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        dependencies=guarded,
        response_class=Response,
        responses={200: {"content": {"text/plain": {"example": "triage_http_requests_total{...} 1.0\n"}}}},
    )
    async def prometheus_metrics() -> Response:
        state = service.models.state
        metrics.set_model(state.model.version if state else None, service.models.reloads)
        return Response(metrics.render(), media_type=metrics.content_type)

    if settings.bench:
        constant = b'{"ok":true}'

        @app.post("/v1/_bench/constant", include_in_schema=False, dependencies=guarded)
        async def bench_constant() -> Response:
            return Response(constant, media_type="application/json")

    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = []
        for err in exc.errors():
            message = str(err.get("msg", "invalid"))
            if err.get("type") == "json_invalid":
                ctx = err.get("ctx") or {}
                message = f"{message}: {ctx.get('error', 'invalid JSON')} at character {err['loc'][-1]}"
            details.append({"field": _loc(err.get("loc", ())), "message": message, "type": err.get("type")})
        first = details[0] if details else {"field": "body", "message": "invalid request"}
        more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
        return _error(422, "validation_error", f"{first['field']}: {first['message']}{more}", details[:50])

    @app.exception_handler(StarletteHTTPException)  # the base class: routing's 404/405 come here too
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail
        if isinstance(detail, dict) and "error" in detail:
            return JSONResponse(detail, status_code=exc.status_code, headers=exc.headers)
        code = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}.get(exc.status_code, f"http_{exc.status_code}")
        message = str(detail) if detail else code
        details = []
        if exc.status_code == 404:
            message = f"no endpoint {request.url.path}; see /docs"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        elif exc.status_code == 400:
            details = [{"field": "body", "message": message, "type": code}]
        return _error(exc.status_code, code, message, details, headers=exc.headers)

    @app.exception_handler(ModelUnavailable)
    async def on_no_model(request: Request, exc: ModelUnavailable) -> JSONResponse:
        return _error(503, "model_unavailable", str(exc), headers={"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error(500, "internal_error", "the server failed on this request; it has been logged")
