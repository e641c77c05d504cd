"""The web page: check a message, open an export, correct verdicts, retrain, see the model.

Server-rendered with Jinja2; the page's own script (static/app.js) calls the JSON API and
the few /ui/ routes here. Every asset is served by the app itself. With an API token set,
the page asks for it once and keeps it in the session (a signed, SameSite=strict cookie).
"""

from __future__ import annotations

import io
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from app import artifact
from app.api.deps import ServiceDep, SettingsDep, off_loop, require_token, token_matches
from app.api.errors import fail
from app.api.middleware import BodyTooLarge
from app.feedback import list_feedback
from app.inbox import LimitExceeded, read_items
from app.model import LABELS
from app.output import score_cells
from app.retrain import FEEDBACK_CURSOR, USER_DIR, retrain
from app.rollup import roll_up
from app.schemas import reason_payload
from app.service import TriageService

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
PAGE_CSP = (
    "default-src 'self'; style-src 'self'; img-src 'self' data:; script-src 'self'; connect-src 'self'; frame-ancestors 'none'"
)
EXPORT_TEXT_CHARS = 4_000  # longer messages are cut in the page's view (the verdict saw the whole text)
router = APIRouter(include_in_schema=False)


def logged_in(request: Request) -> bool:
    token = request.app.state.service.settings.api_token
    return not token or token_matches(request.session.get("token", ""), token)


def page(request: Request, name: str, **context: Any) -> Response:
    if not logged_in(request):
        return RedirectResponse("/ui/login", status_code=303)
    response = TEMPLATES.TemplateResponse(
        request, name, {"token_set": bool(request.app.state.service.settings.api_token), **context}
    )
    response.headers["Content-Security-Policy"] = PAGE_CSP
    return response


@router.get("/", response_class=HTMLResponse)
async def index(request: Request) -> Response:
    return page(request, "index.html", labels=LABELS)


@router.get("/ui/login", response_class=HTMLResponse)
async def login_form(request: Request) -> Response:
    return TEMPLATES.TemplateResponse(request, "login.html", {"error": None})


@router.post("/ui/login", response_class=HTMLResponse)
async def login(request: Request, token: Annotated[str, Form(max_length=500)]) -> Response:
    expected = request.app.state.service.settings.api_token
    if expected and not token_matches(token, expected):
        return TEMPLATES.TemplateResponse(request, "login.html", {"error": "That is not the token."}, status_code=401)
    request.session["token"] = token
    return RedirectResponse("/", status_code=303)


@router.post("/ui/logout")
async def logout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/ui/login", status_code=303)


# --------------------------------------------------------------------------------------
# An export, as conversations
# --------------------------------------------------------------------------------------


def export_view(service: TriageService, files: list[tuple[str, bytes]], me: str | None) -> dict[str, Any]:
    """Score uploaded export files with the one scoring core and group the rows into conversations."""
    uploads = []
    for name, data in files:
        upload = io.BytesIO(data)
        upload.name = name
        uploads.append(upload)
    inbox = read_items(uploads, format="auto", me=me, limits=service.settings.limits())
    scorer = service.scorer()
    records = list(inbox)
    scored = [r for r in records if r.item is not None]
    verdicts = scorer.score([r.item for r in scored if r.item is not None])
    rows = []
    for rec, verdict in zip(scored, verdicts, strict=True):
        assert rec.item is not None
        cells = score_cells(verdict, rec.item.text)
        rows.append(
            {
                **{k: v for k, v in rec.ids.items() if k != "file"},
                "file": Path(str(rec.file)).name,
                "text": rec.item.text[:EXPORT_TEXT_CHARS],
                "verdict": verdict.verdict,
                "confidence": cells[1],
                **{f"p_{lab}": verdict.scores[lab] for lab in LABELS},
                "needs_review": verdict.needs_review,
                "summary": verdict.summary,
                "source": verdict.source,
                "reasons": [reason_payload(r) for r in verdict.reasons],
                "owner_replied_after": rec.item.owner_replied_after,
                "item": {"text": rec.item.text, "kind": rec.item.kind, "sender": {"name": rec.item.sender_name}},
            }
        )
    conversations = roll_up(rows, scorer.model.thresholds)
    skipped: dict[str, int] = {}
    for rec in records:
        if rec.skipped:
            skipped[rec.skipped] = skipped.get(rec.skipped, 0) + 1
    return {
        "owner": inbox.report.owner,
        "read": len(records),
        "scored": len(rows),
        "skipped": skipped,
        "failed": sum(1 for r in records if r.error),
        "model_version": scorer.version,
        "conversations": [
            {
                "key": c.key,
                "sender_name": c.sender_name,
                "verdict": c.verdict,
                "confidence": round(c.confidence, 4),
                "scores": c.scores,
                "needs_review": c.needs_review,
                "awaiting_reply": c.awaiting_reply,
                "last_sent_at": c.last_sent_at,
                "summary": c.summary(),
                "messages": sorted(c.rows, key=lambda r: str(r.get("sent_at") or "")),
            }
            for c in conversations
        ],
    }


@router.post("/ui/export", dependencies=[Depends(require_token)])
async def open_export(
    service: ServiceDep,
    settings: SettingsDep,
    files: Annotated[list[UploadFile], File(description="an export zip, or its CSV files")],
    me: Annotated[str | None, Form(max_length=300)] = None,
) -> Response:
    payload: list[tuple[str, bytes]] = []
    total = 0
    for upload in files:
        data = await upload.read(settings.max_upload_bytes + 1)
        total += len(data)
        if total > settings.max_upload_bytes:
            raise BodyTooLarge(settings.max_upload_bytes, "TRIAGE_MAX_UPLOAD_BYTES")
        payload.append((Path(upload.filename or "upload").name or "upload", data))
    try:
        view = await off_loop(settings, export_view, service, payload, me or None)
    except LimitExceeded as exc:
        raise fail(413, "limit_exceeded", str(exc), "files") from None
    except (ValueError, FileNotFoundError) as exc:
        raise fail(422, "upload_error", str(exc), "files") from None
    except Exception as exc:  # a corrupt zip and the like: the user's file, not a server fault
        raise fail(422, "upload_error", f"cannot read the upload: {type(exc).__name__}: {exc}", "files") from None
    return JSONResponse(view)


# --------------------------------------------------------------------------------------
# Corrections and retraining
# --------------------------------------------------------------------------------------


def _cursor(settings: Any) -> int | None:
    path = Path(settings.data_dir) / USER_DIR / FEEDBACK_CURSOR
    try:
        return int(path.read_text().strip()) if path.is_file() else None
    except ValueError:
        return None


@router.get("/ui/corrections", dependencies=[Depends(require_token)])
async def corrections(settings: SettingsDep) -> Response:
    waiting = await run_in_threadpool(list_feedback, settings.db_path, None, None, _cursor(settings))
    return JSONResponse({"waiting": len(waiting)})


class RetrainJob:
    """One retrain at a time, in a thread; the page polls its state."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.state: dict[str, Any] = {"state": "idle"}

    def start(self, service: TriageService) -> bool:
        if not self.lock.acquire(blocking=False):
            return False
        self.state = {"state": "running", "started_at": datetime.now(UTC).isoformat(timespec="seconds"), "log": []}
        threading.Thread(target=self._run, args=(service,), daemon=True, name="triage-retrain").start()
        return True

    def _run(self, service: TriageService) -> None:
        settings = service.settings
        log: list[str] = self.state["log"]
        try:
            report = retrain(
                settings.data_dir, settings.model_dir, feedback_db=settings.db_path, log=log.append, n_jobs=settings.train_jobs
            )
            service.models.reload()
            self.state.update(
                state="done",
                decision=report.decision,
                reason=report.reason,
                candidate=report.candidate_version,
                comparison=report.comparison,
                accepted=len(report.accepted),
            )
        except Exception as exc:  # shown on the page; the current model stays
            self.state.update(state="failed", reason=f"{type(exc).__name__}: {exc}")
        finally:
            self.lock.release()


JOB = RetrainJob()


@router.post("/ui/retrain", dependencies=[Depends(require_token)])
async def start_retrain(service: ServiceDep) -> Response:
    started = JOB.start(service)
    return JSONResponse(JOB.state, status_code=202 if started else 409)


@router.get("/ui/retrain", dependencies=[Depends(require_token)])
async def retrain_state() -> Response:
    return JSONResponse(JOB.state)


# --------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------


@router.get("/ui/model", response_class=HTMLResponse)
async def model_page(request: Request, service: ServiceDep) -> Response:
    store = service.settings.model_dir
    state = service.models.state
    context = {
        "model": state.model if state else None,
        "manifest": state.model.manifest if state else {},
        "versions": await run_in_threadpool(artifact.list_versions, store),
        "history": list(reversed(await run_in_threadpool(artifact.read_history, store)))[:30],
        "error": service.models.last_error,
    }
    return page(request, "model.html", **context)


@router.post("/ui/model/rollback", dependencies=[Depends(require_token)])
async def rollback(service: ServiceDep, version: Annotated[str, Form(max_length=200)] = "") -> Response:
    try:
        await run_in_threadpool(artifact.rollback, service.settings.model_dir, version or None)
    except artifact.ModelError as exc:
        raise fail(409, "rollback_refused", str(exc), "version") from None
    await run_in_threadpool(service.models.reload)
    return RedirectResponse("/ui/model", status_code=303)
