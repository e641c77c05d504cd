"""Every error is JSON (`ErrorOut`): a code, a sentence, and the fields or rows at fault."""

from __future__ import annotations

import errno
import logging
import sqlite3
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.schemas import ErrorOut
from app.service import ModelUnavailable

log = logging.getLogger("triage.api")


def documented(status: int, description: str) -> dict[int | str, dict[str, Any]]:
    """An error response for the OpenAPI schema: its status, an ErrorOut body and what it means."""
    return {status: {"model": ErrorOut, "description": description}}


ERRORS = (
    documented(401, "missing or wrong bearer token (only when TRIAGE_API_TOKEN is set)")
    | documented(413, "body over the size limit")
    | documented(422, "invalid request: `details` names each field")
    | documented(503, "no verified model loaded yet, or scoring ran past its deadline")
    | documented(507, "the server's disk is full")
)


def error_response(status: int, error: str, message: str, details: list[dict[str, Any]] | None = None, **kw: Any) -> JSONResponse:
    return JSONResponse({"error": error, "message": message, "details": details or []}, status_code=status, **kw)


def fail(status: int, error: str, message: str, field: str | None = None) -> HTTPException:
    """An HTTPException carrying an ErrorOut body."""
    details = [{"field": field, "message": message, "type": error}] if field else []
    return HTTPException(status, detail={"error": error, "message": message, "details": details})


def _loc(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc)


def install_error_handlers(app: FastAPI) -> None:
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
        return error_response(422, "validation_error", f"{first['field']}: {first['message']}{more}", details[:50])

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
        return error_response(exc.status_code, code, message, details, headers=exc.headers)

    @app.exception_handler(sqlite3.OperationalError)
    async def on_store_error(request: Request, exc: sqlite3.OperationalError) -> JSONResponse:
        full = "full" in str(exc).lower()
        log.error("feedback store failed on %s: %s", request.url.path, exc)
        if full:
            return error_response(507, "insufficient_storage", "the feedback store's disk is full; nothing was stored")
        return error_response(
            503, "store_unavailable", f"the feedback store cannot be used now: {exc}", headers={"Retry-After": "5"}
        )

    @app.exception_handler(OSError)
    async def on_os_error(request: Request, exc: OSError) -> JSONResponse:
        log.error("I/O failed on %s: %s", request.url.path, exc)
        if exc.errno == errno.ENOSPC:
            return error_response(507, "insufficient_storage", "the server's disk is full; nothing was stored")
        return error_response(503, "io_error", f"the server could not read or write a file: {exc.strerror or exc}")

    @app.exception_handler(ModelUnavailable)
    async def on_no_model(request: Request, exc: ModelUnavailable) -> JSONResponse:
        return error_response(503, "model_unavailable", str(exc), headers={"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "the server failed on this request; it has been logged")
