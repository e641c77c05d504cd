"""/healthz, /readyz and /metrics."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from app.api.deps import MetricsDep, ServiceDep, model_json, require_token
from app.schemas import HealthOut, ReadyOut

router = APIRouter(tags=["operations"])
_ABSOLUTE_PATH = re.compile(r"/[^\s:'\"()]{1,4096}")  # the server's folders are nobody's business: shown by name only


@router.get("/healthz", response_model=HealthOut, summary="Alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=ReadyOut,
    summary="Ready: a verified model is loaded",
    responses={503: {"model": ReadyOut, "description": "no verified model loaded"}},
)
async def readyz(service: ServiceDep) -> Response:
    state = service.models.state
    if state is None:
        reason = _ABSOLUTE_PATH.sub(lambda m: Path(m.group(0)).name or "/", service.models.last_error or "loading")
        return model_json(ReadyOut(status="not_ready", reason=reason), status=503)
    return model_json(ReadyOut(status="ready", model_version=state.model.version))


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    dependencies=[Depends(require_token)],
    response_class=Response,
    responses={200: {"content": {"text/plain": {"example": "triage_http_requests_total{...} 1.0\n"}}}},
)
async def prometheus_metrics(service: ServiceDep, metrics: MetricsDep) -> Response:
    state = service.models.state
    metrics.set_model(state.model.version if state else None, service.models.reloads)
    return Response(metrics.render(), media_type=metrics.content_type)
