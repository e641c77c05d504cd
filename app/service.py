"""The scoring service's core, free of HTTP: the shared model, lists, scoring and feedback.

- `ModelHolder` loads the model once and swaps a new one in atomically (one attribute
  assignment); a model that fails verification is refused and the current one stays.
- `TriageService` applies the allow/deny lists, then the model; it watches the model
  store (CURRENT and the manifest) and the lists file in a background thread and
  reloads when they change.
- `score_upload` scores an upload in the batch CLI's formats (plain CSV, JSONL, a
  LinkedIn export), read by `app.inbox.read_items`, row by row; a bad row becomes an
  error row naming its line.
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app import feedback as feedback_store
from app.artifact import MANIFEST_FILE, POINTER_FILE, ModelError, load_model, resolve_version_dir
from app.batch import SCORE_COLUMNS, carried_columns
from app.features import Item
from app.inbox import Record, read_items
from app.items import ThreadMessage, build_item, parse_datetime
from app.lists import Lists, ListsError, Sender, list_verdict, load_lists
from app.model import DEFAULT_REASONS, LABELS, Explanation, Thresholds, TriageModel, Verdict
from app.settings import Settings

log = logging.getLogger("triage.service")

SOURCE_MODEL = "model"
SOURCE_ALLOW = "allow_list"
SOURCE_DENY = "deny_list"


class ModelUnavailable(RuntimeError):
    """No verified model is loaded yet; the message says why."""


# --------------------------------------------------------------------------------------
# Requests and results
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Incoming:
    """One item to score, with what the lists need and the caller's id."""

    item: Item
    id: str | None = None
    sender: Sender = field(default_factory=Sender)
    request: Mapping[str, Any] | None = None  # the item as submitted (kept with feedback)


@dataclass(frozen=True)
class Scored:
    id: str | None
    verdict: Verdict
    source: str  # "model", "allow_list" or "deny_list"


@dataclass(frozen=True)
class Explained:
    id: str | None
    verdict: Verdict
    source: str
    explanation: Explanation  # the model's exact decomposition (also when a list decided)


def make_incoming(
    text: str,
    *,
    kind: str = "message",
    item_id: str | None = None,
    sender: Mapping[str, Any] | None = None,
    recipient_name: str | None = None,
    sent_at: Any = None,
    connected_at: Any = None,
    thread: Iterable[ThreadMessage] = (),
    prior_unanswered: int | None = None,
    minutes_since_connected: int | None = None,
    request: Mapping[str, Any] | None = None,
) -> Incoming:
    """An Incoming from a request's fields (through `build_item`). Raises ValueError naming the field."""
    sender = dict(sender or {})
    try:
        item = build_item(
            text,
            kind=kind,
            sender=sender,
            recipient_name=recipient_name,
            sent_at=parse_datetime(sent_at, "sent_at"),
            connected_at=parse_datetime(connected_at, "connected_at"),
            thread=thread,
            prior_unanswered=prior_unanswered,
            minutes_since_connected=minutes_since_connected,
        )
    except OverflowError as exc:
        raise ValueError(f"sent_at/connected_at: {exc}") from None
    return Incoming(
        item,
        item_id,
        Sender(profile_url=sender.get("profile_url") or None, company=sender.get("company") or None),
        request,
    )


# --------------------------------------------------------------------------------------
# The shared model
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelState:
    """One loaded, verified model; replaced as a whole, never changed in place."""

    model: TriageModel
    version_dir: Path
    fingerprint: tuple[Any, ...]
    loaded_at: datetime


@dataclass(frozen=True)
class ReloadResult:
    ok: bool
    changed: bool
    version: str | None
    previous_version: str | None
    message: str


def model_fingerprint(model_dir: Path) -> tuple[Any, ...]:
    """What identifies the model on disk: the version CURRENT names and its manifest's stat."""
    model_dir = Path(model_dir)
    try:
        version_dir = resolve_version_dir(model_dir)
        stat = (version_dir / MANIFEST_FILE).stat()
        pointer = model_dir / POINTER_FILE
        current = pointer.read_text(encoding="utf-8").strip() if pointer.is_file() else None
    except (ModelError, OSError) as exc:
        return ("unusable", str(exc))
    return (str(version_dir), current, stat.st_mtime_ns, stat.st_size, stat.st_ino)


def apply_thresholds(model: TriageModel, review: float | None, spam: float | None) -> TriageModel:
    """Override the manifest's thresholds where settings give one (each in [0, 1])."""
    for name, value in (("TRIAGE_REVIEW_THRESHOLD", review), ("TRIAGE_SPAM_THRESHOLD", spam)):
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, got {value}")
    if review is not None or spam is not None:
        base = model.thresholds
        model.thresholds = Thresholds(
            review=base.review if review is None else review,
            spam=base.spam if spam is None else spam,
        )
    return model


class ModelHolder:
    """The one model every request shares; `reload` swaps it atomically or keeps the old one."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.model_dir = Path(settings.model_dir)
        self._state: ModelState | None = None
        self._lock = threading.Lock()
        self._failed_fingerprint: tuple[Any, ...] | None = None
        self.last_error: str | None = None
        self.reloads = {"ok": 0, "refused": 0}

    @property
    def state(self) -> ModelState | None:
        return self._state

    def require(self) -> ModelState:
        state = self._state
        if state is None:
            raise ModelUnavailable(f"no verified model loaded from {self.model_dir}: {self.last_error or 'not loaded yet'}")
        return state

    def reload(self) -> ReloadResult:
        """Load the model the store points at; refuse it (keeping the current one) if it fails."""
        with self._lock:
            previous = self._state
            prev_version = previous.model.version if previous else None
            fingerprint = model_fingerprint(self.model_dir)
            try:
                version_dir = resolve_version_dir(self.model_dir)
                model = apply_thresholds(load_model(self.model_dir), self.settings.review_threshold, self.settings.spam_threshold)
            except Exception as exc:  # a bad artifact can fail in many ways; none may take the service down
                message = str(exc) if isinstance(exc, (ModelError, ValueError)) else f"{type(exc).__name__}: {exc}"
                self._failed_fingerprint = fingerprint
                self.last_error = message
                self.reloads["refused"] += 1
                log.error("model refused, keeping %s: %s", prev_version or "no model", message)
                return ReloadResult(False, False, prev_version, prev_version, message)
            self._state = ModelState(model, version_dir, fingerprint, datetime.now(UTC))
            self._failed_fingerprint = None
            self.last_error = None
            self.reloads["ok"] += 1
            changed = model.version != prev_version
            log.info("model %s loaded from %s", model.version, version_dir)
            message = f"loaded {model.version}" + (f" (was {prev_version})" if prev_version and changed else "")
            return ReloadResult(True, changed, model.version, prev_version, message)

    def changed_on_disk(self) -> bool:
        """Whether the store now points at something other than the loaded (or last refused) model."""
        fingerprint = model_fingerprint(self.model_dir)
        state = self._state
        if state is not None and fingerprint == state.fingerprint:
            return False
        return fingerprint != self._failed_fingerprint


# --------------------------------------------------------------------------------------
# The service
# --------------------------------------------------------------------------------------


def _file_stamp(path: Path | None) -> tuple[Any, ...] | None:
    if path is None:
        return None
    try:
        st = Path(path).stat()
    except OSError:
        return ("missing",)
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class TriageService:
    """Lists, then the model; watches both for changes. Create once per process."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.models = ModelHolder(settings)
        self.lists: Lists = Lists()
        self.lists_error: str | None = None
        self._lists_stamp: tuple[Any, ...] | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.started_at = datetime.now(UTC)

    # -- life cycle -------------------------------------------------------------------
    def start(self, watch: bool = True) -> None:
        """Load the lists (a bad lists file is fatal), the model (a missing one is not) and start watching."""
        for name, value in (
            ("TRIAGE_REVIEW_THRESHOLD", self.settings.review_threshold),
            ("TRIAGE_SPAM_THRESHOLD", self.settings.spam_threshold),
        ):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        self.lists = load_lists(self.settings.lists_file)
        self._lists_stamp = _file_stamp(self.settings.lists_file)
        feedback_store.connect(self.settings.db_path).close()
        result = self.models.reload()
        if not result.ok:
            log.warning("starting without a model; /readyz will say 503 until one loads: %s", result.message)
        if watch and self.settings.reload_poll_seconds > 0:
            self._stop.clear()
            self._watcher = threading.Thread(target=self._watch, name="triage-watcher", daemon=True)
            self._watcher.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
            self._watcher = None

    def _watch(self) -> None:
        while not self._stop.wait(self.settings.reload_poll_seconds):
            try:
                self.poll()
            except Exception:  # the watcher must outlive any one bad poll
                log.exception("watcher poll failed")

    def poll(self) -> list[str]:
        """Reload what changed on disk (model, lists); returns what was reloaded."""
        done = []
        if self.models.changed_on_disk():
            result = self.models.reload()
            done.append(f"model: {result.message}")
        stamp = _file_stamp(self.settings.lists_file)
        if stamp != self._lists_stamp:
            self._lists_stamp = stamp
            done.append(f"lists: {self.reload_lists()}")
        return done

    def reload_lists(self) -> str:
        try:
            self.lists = load_lists(self.settings.lists_file)
        except ListsError as exc:
            self.lists_error = str(exc)
            log.error("lists refused, keeping the current ones: %s", exc)
            return f"refused: {exc}"
        self.lists_error = None
        return "loaded"

    @property
    def ready(self) -> bool:
        return self.models.state is not None

    # -- scoring ----------------------------------------------------------------------
    def _score_with(self, model: TriageModel, lists: Lists, incoming: Incoming, n_reasons: int) -> Scored:
        matches = lists.match(incoming.item, incoming.sender) if not lists.empty else []
        if matches:
            verdict = list_verdict(matches, model.version)
            return Scored(incoming.id, verdict, SOURCE_ALLOW if verdict.verdict == "genuine" else SOURCE_DENY)
        return Scored(incoming.id, model.score_item(incoming.item, n_reasons), SOURCE_MODEL)

    def score(self, incoming: Incoming, n_reasons: int = DEFAULT_REASONS) -> Scored:
        """Lists first, then the model. Raises ModelUnavailable when no model is loaded."""
        return self._score_with(self.models.require().model, self.lists, incoming, n_reasons)

    def score_many(self, incomings: Sequence[Incoming], n_reasons: int = DEFAULT_REASONS) -> list[Scored]:
        """Score in order with one model and one set of lists, even if a reload lands meanwhile."""
        model, lists = self.models.require().model, self.lists
        return [self._score_with(model, lists, inc, n_reasons) for inc in incomings]

    def explain(self, incoming: Incoming) -> Explained:
        """The model's exact decomposition; the verdict is the list's when a list matches."""
        model, lists = self.models.require().model, self.lists
        explanation = model.explain(incoming.item)
        scored = self._score_with(model, lists, incoming, 0)
        verdict = explanation.verdict if scored.source == SOURCE_MODEL else scored.verdict
        return Explained(incoming.id, verdict, scored.source, explanation)

    # -- feedback ---------------------------------------------------------------------
    def add_feedback(
        self, incoming: Incoming, label: str, corrects: str | None = None, model_version: str | None = None
    ) -> feedback_store.FeedbackRecord:
        """Store feedback; the model version defaults to the one serving now."""
        if model_version is None and self.models.state is not None:
            model_version = self.models.state.model.version
        return feedback_store.add_feedback(
            self.settings.db_path,
            incoming.item,
            label,
            corrects=corrects,
            model_version=model_version,
            item_id=incoming.id,
            request=incoming.request,
        )

    def list_feedback(
        self, since: datetime | None = None, limit: int | None = None, after_id: int | None = None
    ) -> list[feedback_store.FeedbackRecord]:
        return feedback_store.list_feedback(self.settings.db_path, since=since, limit=limit, after_id=after_id)

    # -- the model card ---------------------------------------------------------------
    def model_info(self) -> dict[str, Any]:
        state = self.models.require()
        manifest = state.model.manifest
        return {
            "version": state.model.version,
            "created_at": manifest.get("created_at"),
            "labels": list(manifest.get("labels", LABELS)),
            "metrics": manifest.get("metrics", {}),
            "thresholds": {"review": state.model.thresholds.review, "spam": state.model.thresholds.spam},
            "manifest_thresholds": manifest.get("thresholds", {}),
            "n_features": manifest.get("n_features"),
            "training_data": manifest.get("training_data", {}),
            "versions": manifest.get("versions", {}),
            "signals": state.model.manifest.get("signals") or {},
            "loaded_at": state.loaded_at,
            "version_dir": str(state.version_dir),
            "lists": self.lists.summary(),
        }


# --------------------------------------------------------------------------------------
# Uploads: the batch CLI's formats, through the same reader (app.inbox.read_items)
# --------------------------------------------------------------------------------------

UPLOAD_SCORE_COLUMNS = (
    *SCORE_COLUMNS,
    "source",
    "summary",
    "model_version",
    "status",
    "error",
)
UPLOAD_CHUNK_ROWS = 64


class UploadError(ValueError):
    """An upload that cannot be read at all (format, header, encoding); says why."""


def _csv_line(values: Iterable[Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(["" if v is None else v for v in values])
    return buf.getvalue()


def _reason_cell(r: Any) -> str:
    return f"{r.feature} ({r.contribution:+.3f}): {r.description}"


def score_upload(
    service: TriageService,
    data: bytes,
    filename: str = "upload",
    format: str = "auto",
    me: str | None = None,
    on_scored: Callable[[Scored], None] | None = None,
) -> Iterator[str]:
    """Check the upload now (raising UploadError), then yield the scored CSV in chunks.

    Columns: the reader's id columns (file, line, id, ...), the input's extra columns
    (renamed input_<name> on a clash), then UPLOAD_SCORE_COLUMNS. Every record gives a
    row: `status` is scored, skipped (`error` says why, e.g. the owner's own message) or
    error (`error` names the line and the field).
    """
    upload = io.BytesIO(data)
    upload.name = filename  # the reader labels rows with it
    try:
        inbox = read_items(upload, format=format, me=me)
        records = iter(inbox)
        first = next(records, None)
    except (ValueError, FileNotFoundError) as exc:
        raise UploadError(str(exc)) from None
    except Exception as exc:  # a corrupt zip and the like: the client's file, not a server fault
        log.info("unreadable upload %s: %r", filename, exc)
        raise UploadError(f"cannot read {filename}: {type(exc).__name__}: {exc}") from None
    model = service.models.require().model
    lists = service.lists
    max_chars = service.settings.max_text_chars
    id_cols = list(inbox.id_columns)
    extra = carried_columns(inbox, UPLOAD_SCORE_COLUMNS)
    blank = [""] * (len(UPLOAD_SCORE_COLUMNS) - 2)

    def row_for(rec: Record) -> list[Any]:
        head = [rec.ids.get(c) for c in id_cols] + [rec.extra.get(name) for name, _ in extra]
        if rec.skipped is not None:
            return [*head, *blank, "skipped", rec.skipped]
        if rec.error is not None or rec.item is None:
            return [*head, *blank, "error", f"line {rec.line}: {rec.error or 'no item'}"]
        if len(rec.item.text) > max_chars:
            too_long = f"line {rec.line}: text: {len(rec.item.text):,} characters, the limit is {max_chars:,}"
            return [*head, *blank, "error", too_long]
        sender = Sender(profile_url=rec.ids.get("sender_profile_url"), company=rec.extra.get("sender_company") or None)
        try:
            scored = service._score_with(model, lists, Incoming(rec.item, rec.ids.get("id"), sender), 3)
        except Exception as exc:  # one row failing must not end the stream
            log.exception("scoring line %d of %s failed", rec.line, rec.file)
            return [*head, *blank, "error", f"line {rec.line}: could not score: {type(exc).__name__}: {exc}"]
        if on_scored is not None:
            on_scored(scored)
        v = scored.verdict
        reasons = [_reason_cell(r) for r in v.reasons[:3]] + [""] * (3 - min(len(v.reasons), 3))
        return [
            *head,
            v.verdict,
            round(v.confidence, 4),
            *(round(v.scores[lab], 4) for lab in LABELS),
            "true" if v.needs_review else "false",
            *reasons,
            scored.source,
            v.summary,
            v.model_version,
            "scored",
            "",
        ]

    def generate() -> Iterator[str]:
        buf = [_csv_line([*id_cols, *(out for _, out in extra), *UPLOAD_SCORE_COLUMNS])]
        pending = [] if first is None else [first]
        try:
            for rec in itertools.chain(pending, records):
                buf.append(_csv_line(row_for(rec)))
                if len(buf) >= UPLOAD_CHUNK_ROWS:
                    yield "".join(buf)
                    buf = []
        except Exception as exc:  # the response has started: end it with a row saying why
            log.exception("upload %s stopped", filename)
            stop = [""] * (len(id_cols) + len(extra)) + blank + ["error", f"reading stopped: {type(exc).__name__}: {exc}"]
            buf.append(_csv_line(stop))
        if buf:
            yield "".join(buf)

    return generate()
