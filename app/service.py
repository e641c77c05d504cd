"""The scoring service's core, free of HTTP: the shared model, lists, scoring and feedback.

- `ModelHolder` loads the model once and swaps a new one in atomically (one attribute
  assignment); a model that fails verification is refused and the current one stays.
- `TriageService` scores through `Scorer` (lists, then the model); it watches the model
  store (CURRENT and the manifest) and the lists file in a background thread and reloads
  when they change.
- `score_upload` scores an upload in the batch CLI's formats (plain CSV, JSONL, a LinkedIn
  export), read by `app.inbox.read_items`, in chunks through the same `score_chunk` as
  `triage score`; a bad row becomes an error row naming its line.
"""

from __future__ import annotations

import io
import itertools
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app import feedback as feedback_store
from app.artifact import MANIFEST_FILE, POINTER_FILE, ModelError, load_model, resolve_version_dir
from app.batch import output_columns, row_head, score_chunk, too_long
from app.inbox import LimitExceeded, Record, read_items
from app.items import Item
from app.lists import Lists, ListsError, load_lists
from app.model import DEFAULT_REASONS, LABELS, Explanation, Thresholds, TriageModel, Verdict
from app.output import SCORE_COLUMNS, STATUS_COLUMNS, csv_line
from app.scoring import Scorer
from app.settings import Settings

log = logging.getLogger("triage.service")


class ModelUnavailable(RuntimeError):
    """No verified model is loaded yet; the message says why."""


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
                # Score one text before going live: the compiled loops load (or compile, on a fresh
                # install) now, not on the first request, and a model that cannot score is refused here.
                model.verdicts([Item(text="warm-up: thanks for connecting!")])
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
    def scorer(self) -> Scorer:
        """The current model with the current lists; both captured now, so a reload mid-request changes nothing."""
        return Scorer(self.models.require().model, self.lists)

    def score(self, items: list[Item], n_reasons: int = DEFAULT_REASONS) -> list[Verdict]:
        """Lists first, then the model, for every item in one pass. Raises ModelUnavailable without a model."""
        return self.scorer().score(items, n_reasons)

    def explain(self, item: Item) -> Explanation:
        return self.scorer().explain(item)

    # -- feedback ---------------------------------------------------------------------
    def add_feedback(self, item: Item, label: str, **details: Any) -> feedback_store.FeedbackRecord:
        """Store feedback (`details`: feedback.add_feedback's keywords); the model version defaults to the one serving now."""
        if details.get("model_version") is None and self.models.state is not None:
            details["model_version"] = self.models.state.model.version
        return feedback_store.add_feedback(self.settings.db_path, item, label, **details)

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
# Uploads: the batch CLI's formats, through the same reader and the same scoring core
# --------------------------------------------------------------------------------------

UPLOAD_SCORE_COLUMNS = (*SCORE_COLUMNS, *STATUS_COLUMNS)
UPLOAD_CHUNK_ROWS = 64


class UploadError(ValueError):
    """An upload that cannot be read at all (format, header, encoding); says why."""


class UploadTooLarge(UploadError):
    """An upload over one of the input limits; the message names the limit's setting."""


def score_upload(
    service: TriageService,
    data: bytes,
    filename: str = "upload",
    format: str = "auto",
    me: str | None = None,
    on_scored: Callable[[str], None] | None = None,
) -> Iterator[str]:
    """Check the upload now (raising UploadError), then yield the scored CSV in chunks.

    Columns: the reader's id columns (file, line, id, ...), the input's extra columns
    (renamed input_<name> on a clash), then SCORE_COLUMNS and `status`, `error`. Every
    record gives a row: `status` is scored, skipped (`error` says why, e.g. the owner's own
    message) or error (`error` names the line and the field).
    """
    upload = io.BytesIO(data)
    upload.name = filename  # the reader labels rows with it
    try:
        inbox = read_items(upload, format=format, me=me, limits=service.settings.limits())
        records = iter(inbox)
        first = next(records, None)
    except LimitExceeded as exc:
        raise UploadTooLarge(str(exc)) from None
    except (ValueError, FileNotFoundError) as exc:
        raise UploadError(str(exc)) from None
    except Exception as exc:  # a corrupt zip and the like: the client's file, not a server fault
        log.info("unreadable upload %s: %r", filename, exc)
        raise UploadError(f"cannot read {filename}: {type(exc).__name__}: {exc}") from None
    scorer = service.scorer()
    max_chars = service.settings.max_text_chars
    columns, extra = output_columns(inbox, UPLOAD_SCORE_COLUMNS)
    id_cols = list(inbox.id_columns)
    blank = [None] * len(SCORE_COLUMNS)

    def rows_for(chunk: list[Record]) -> list[str]:
        scorable = [
            r for r in chunk if r.skipped is None and r.error is None and r.item is not None and not too_long(r, max_chars)
        ]
        cells = dict(zip(map(id, scorable), score_chunk(scorer, [r.item for r in scorable]), strict=True))  # type: ignore[misc]
        out = []
        for rec in chunk:
            head = row_head(rec, id_cols, extra)
            got = cells.get(id(rec))
            if rec.skipped is not None:
                out.append(csv_line([*head, *blank, "skipped", rec.skipped]))
            elif got is None or isinstance(got, str):
                reason = got if isinstance(got, str) else rec.error or too_long(rec, max_chars) or "no item"
                out.append(csv_line([*head, *blank, "error", f"line {rec.line}: {reason}"]))
            else:
                if on_scored is not None:
                    on_scored(got[0])
                out.append(csv_line([*head, *got, "scored", None]))
        return out

    def generate() -> Iterator[str]:
        yield csv_line(columns)
        chunk: list[Record] = []
        try:
            for rec in itertools.chain([] if first is None else [first], records):
                chunk.append(rec)
                if len(chunk) >= UPLOAD_CHUNK_ROWS:
                    yield "".join(rows_for(chunk))
                    chunk = []
            if chunk:
                yield "".join(rows_for(chunk))
        except Exception as exc:  # the response has started: end it with a row saying why
            log.exception("upload %s stopped", filename)
            stop = [None] * (len(id_cols) + len(extra)) + blank + ["error", f"reading stopped: {type(exc).__name__}: {exc}"]
            yield csv_line(stop)

    return generate()
