"""/v1/score, /v1/score/batch, /v1/score/csv and /v1/explain: every one calls the one scoring core."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import Response, StreamingResponse

from app.api.deps import GUARDED, MetricsDep, ServiceDep, SettingsDep, off_loop, raw_json, to_item
from app.api.errors import ERRORS, fail
from app.api.middleware import BodyTooLarge
from app.schemas import BatchIn, BatchOut, ExplainOut, ItemIn, VerdictOut, explain_payload, verdict_payload
from app.service import UploadError, UploadTooLarge, score_upload

router = APIRouter(prefix="/v1", tags=["scoring"], dependencies=GUARDED, responses=ERRORS)


@router.post("/score", response_model=VerdictOut, summary="Score one item")
async def score(item: ItemIn, service: ServiceDep, settings: SettingsDep, metrics: MetricsDep) -> Response:
    """The verdict, the three class scores, the strongest evidence and a one-sentence summary."""
    verdict = (await off_loop(settings, service.score, [to_item(item, "body", settings)]))[0]
    metrics.observe_verdict(verdict.verdict, verdict.source, verdict.needs_review)
    return raw_json(verdict_payload(item.id, verdict))


@router.post("/score/batch", response_model=BatchOut, summary="Score up to 1,000 items")
async def score_batch(batch: BatchIn, service: ServiceDep, settings: SettingsDep, metrics: MetricsDep) -> Response:
    """Answers in the order of the items, scored together in one pass with one model version."""
    if len(batch.items) > settings.max_batch_items:
        raise fail(422, "too_long", f"{len(batch.items):,} items, the limit is {settings.max_batch_items:,}", "body.items")
    items = [to_item(it, f"body.items.{i}", settings) for i, it in enumerate(batch.items)]
    verdicts = await off_loop(settings, service.score, items)
    for v in verdicts:
        metrics.observe_verdict(v.verdict, v.source, v.needs_review)
    return raw_json(
        {"count": len(verdicts), "items": [verdict_payload(it.id, v) for it, v in zip(batch.items, verdicts, strict=True)]}
    )


@router.post(
    "/score/csv",
    summary="Score an uploaded inbox (CSV, JSONL or LinkedIn export); the scored CSV is streamed back",
    responses={
        200: {
            "content": {
                "text/csv": {"example": "file,line,id,...,verdict,...,status,error\r\ninbox.csv,2,a1,...,genuine,...,scored,\r\n"}
            },
            "description": "the scored CSV: one row per input record",
        },
    },
    response_class=StreamingResponse,
)
async def score_upload_file(
    file: Annotated[UploadFile, File(description="the inbox: a CSV with a `text` column, JSONL, or a LinkedIn export")],
    service: ServiceDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    format: Annotated[
        Literal["auto", "csv", "jsonl", "linkedin"], Form(description="detected from the content when auto")
    ] = "auto",
    me: Annotated[str | None, Form(max_length=300, description="LinkedIn export: the owner's name or profile URL")] = None,
) -> StreamingResponse:
    """The same reader and the same scoring core as `triage score`: plain CSV (`text` plus optional
    item columns; other columns, such as `sender_company`, are echoed), JSONL (one item per line)
    or a LinkedIn export (zip, or its CSV files).

    One output row per input record: its file, line and ids, the echoed columns, then the score
    columns of `triage score` (verdict, confidence, p_genuine, p_sales_pitch, p_spam, needs_review,
    source, summary, reason_1..3, snippet, model_version), `status` (scored, skipped or error) and
    `error` (for a bad row: its line and the field at fault).
    """
    data = await file.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise BodyTooLarge(settings.max_upload_bytes, "TRIAGE_MAX_UPLOAD_BYTES")
    name = Path(file.filename or "upload").name or "upload"
    counted = lambda label: metrics.observe_verdict(label, "batch", False)
    try:
        chunks = await off_loop(settings, score_upload, service, data, name, format, me, counted)
    except UploadTooLarge as exc:
        raise fail(413, "limit_exceeded", str(exc), "file") from None
    except UploadError as exc:
        raise fail(422, "upload_error", str(exc), "file") from None
    return StreamingResponse(
        chunks, media_type="text/csv; charset=utf-8", headers={"Content-Disposition": 'attachment; filename="scored.csv"'}
    )


@router.post("/explain", response_model=ExplainOut, summary="The exact decomposition of every class's decision value")
async def explain(item: ItemIn, service: ServiceDep, settings: SettingsDep) -> Response:
    """For every class: the intercept and every non-zero contribution, summing to its decision value."""
    explanation = await off_loop(settings, service.explain, to_item(item, "body", settings))
    return raw_json(explain_payload(item.id, explanation))
