"""/v1/model: the serving model's card, and reloading it."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from app.api.deps import GUARDED, ServiceDep, model_json
from app.api.errors import ERRORS, documented, error_response
from app.schemas import ModelOut, ReloadOut, SignalOut

router = APIRouter(prefix="/v1/model", tags=["model"], dependencies=GUARDED, responses=ERRORS)


@router.get("", response_model=ModelOut, summary="The serving model's manifest")
async def model_card(service: ServiceDep) -> Response:
    info = service.model_info()
    info["signals"] = [SignalOut(name=k, description=v) for k, v in (info.pop("signals") or {}).items()]
    info.pop("version_dir", None)
    return model_json(ModelOut.model_validate(info))


@router.post(
    "/reload",
    response_model=ReloadOut,
    summary="Load the model the store points at now",
    responses=documented(409, "the new model failed verification; the current one stays"),
)
async def reload_model(service: ServiceDep) -> Response:
    """Swaps the new model in atomically; a model that fails verification is refused (409)."""
    result = await run_in_threadpool(service.models.reload)
    if not result.ok:
        kept = result.version or "no model"
        return error_response(409, "model_refused", f"{result.message}; still serving {kept}")
    return model_json(ReloadOut.from_core(result))
