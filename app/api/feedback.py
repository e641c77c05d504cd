"""/v1/feedback: store corrections, list them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from app.api.deps import GUARDED, MetricsDep, ServiceDep, SettingsDep, model_json, to_item
from app.api.errors import ERRORS, fail
from app.schemas import FeedbackIn, FeedbackListOut, FeedbackOut

router = APIRouter(prefix="/v1/feedback", tags=["feedback"], dependencies=GUARDED, responses=ERRORS)


@router.post("", response_model=FeedbackOut, status_code=201, summary="Store an item with its correct label")
async def add_feedback(body: FeedbackIn, service: ServiceDep, settings: SettingsDep, metrics: MetricsDep) -> Response:
    """Stored in SQLite (TRIAGE_DB, WAL mode); retraining reads this store."""
    item = to_item(body.item, "body.item", settings)
    request = body.item.model_dump(mode="json", exclude_none=True)
    record = await run_in_threadpool(
        service.add_feedback,
        item,
        body.label,
        corrects=body.corrects,
        model_version=body.model_version,
        item_id=body.item.id,
        request=request,
    )
    metrics.feedback.labels(record.label).inc()
    return model_json(FeedbackOut.from_core(record), status=201)


@router.get("", response_model=FeedbackListOut, summary="List stored feedback, oldest first")
async def list_feedback(
    service: ServiceDep,
    since: Annotated[datetime | None, Query(description="only feedback created at or after this time (ISO 8601)")] = None,
    after_id: Annotated[int | None, Query(ge=0, le=2**62, description="only feedback with a larger id (paging)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="at most this many, oldest first")] = 100,
) -> Response:
    try:
        records = await run_in_threadpool(service.list_feedback, since, limit, after_id)
    except (ValueError, OverflowError) as exc:
        raise fail(422, "value_error", str(exc), "query.since") from None
    items = [FeedbackOut.from_core(r) for r in records]
    next_after = items[-1].id if len(items) == limit else None
    return model_json(FeedbackListOut.model_construct(count=len(items), items=items, next_after_id=next_after))
