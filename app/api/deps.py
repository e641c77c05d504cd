"""What every route shares: the service (injected with Depends), the token guard, item conversion, replies."""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from app.api.errors import fail
from app.items import Item
from app.schemas import ItemIn
from app.service import TriageService
from app.settings import Settings
from app.telemetry import Metrics

BEARER = HTTPBearer(auto_error=False, description="the TRIAGE_API_TOKEN value")
T = TypeVar("T")


def get_service(request: Request) -> TriageService:
    return request.app.state.service


def get_settings(request: Request) -> Settings:
    return request.app.state.service.settings


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


ServiceDep = Annotated[TriageService, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


def token_matches(given: str, token: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))


async def require_token(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> None:
    """With TRIAGE_API_TOKEN set, a bearer token (or the page's session) must match it; without, nothing to check."""
    token = request.app.state.service.settings.api_token
    if not token:
        return
    given = credentials.credentials if credentials else ""
    if token_matches(given, token) or token_matches(
        request.session.get("token", "") if "session" in request.scope else "", token
    ):
        return
    raise HTTPException(
        401,
        detail={"error": "unauthorized", "message": "missing or wrong bearer token (Authorization: Bearer <token>)"},
        headers={"WWW-Authenticate": "Bearer"},
    )


GUARDED = [Depends(require_token)]


def to_item(item: ItemIn, where: str, settings: Settings) -> Item:
    """The core's Item for a request item; 422 naming the field when it is over a limit or cannot be read."""
    if len(item.text) > settings.max_text_chars:
        message = f"{len(item.text):,} characters, the limit is {settings.max_text_chars:,}"
        raise fail(422, "string_too_long", message, f"{where}.text")
    for i, m in enumerate(item.thread):
        if len(m.text) > settings.max_text_chars:
            message = f"{len(m.text):,} characters, the limit is {settings.max_text_chars:,}"
            raise fail(422, "string_too_long", message, f"{where}.thread.{i}.text")
    try:
        return item.to_item()
    except ValueError as exc:
        raise fail(422, "value_error", str(exc), where) from None


async def off_loop(settings: Settings, fn: Callable[..., T], *args: Any) -> T:
    """Run CPU work in the thread pool, never on the event loop, with the request deadline."""
    try:
        return await asyncio.wait_for(run_in_threadpool(fn, *args), timeout=settings.score_timeout_seconds)
    except TimeoutError:
        raise fail(
            503,
            "deadline_exceeded",
            f"scoring took longer than {settings.score_timeout_seconds:g} s (TRIAGE_SCORE_TIMEOUT_SECONDS)",
        ) from None


def raw_json(payload: Any, status: int = 200) -> Response:
    """Serialise a payload already in a response model's shape (see app.schemas.*_payload)."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    return Response(body, status_code=status, media_type="application/json")


def model_json(model: BaseModel, status: int = 200) -> Response:
    return Response(model.model_dump_json(), status_code=status, media_type="application/json")
