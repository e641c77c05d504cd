"""ASGI middleware: the body size limit and request metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import HTTPException
from fastapi.responses import JSONResponse

from app.telemetry import Metrics

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]
MULTIPART_OVERHEAD_BYTES = 64 * 1024


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
                    message = f"Content-Length must be a whole number of bytes, got {value.decode('latin-1')!r}"
                    body = {
                        "error": "bad_request",
                        "message": message,
                        "details": [{"field": "header.content-length", "message": message}],
                    }
                    await JSONResponse(body, status_code=400)(scope, receive, send)
                    return
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
