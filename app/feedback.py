"""The feedback store: items with their correct label, in SQLite (WAL mode).

One row per piece of feedback: the item (its model fields as JSON, plus the request it
came from), the correct label, the verdict it corrects (optional), the model version
that was serving, and when it arrived (UTC). Each write is its own short transaction
with a busy timeout, so concurrent writers from threads or processes wait for each
other instead of losing rows. Retraining reads the store with `list_feedback` and
`feedback_items`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.items import Item
from app.model import LABELS

SCHEMA_VERSION = 1
BUSY_TIMEOUT_SECONDS = 30.0
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    label TEXT NOT NULL CHECK (label IN {LABELS!r}),
    corrects TEXT CHECK (corrects IS NULL OR corrects IN {LABELS!r}),
    model_version TEXT,
    item_id TEXT,
    item_json TEXT NOT NULL,
    request_json TEXT
);
CREATE INDEX IF NOT EXISTS feedback_created_at ON feedback (created_at);
"""
_COLUMNS = "id, created_at, label, corrects, model_version, item_id, item_json, request_json"


@dataclass(frozen=True)
class FeedbackRecord:
    id: int
    created_at: datetime
    label: str
    corrects: str | None
    model_version: str | None
    item_id: str | None
    item: dict[str, Any]  # the Item's fields, as the model reads them
    request: dict[str, Any] | None  # the item as it was submitted, if known


def _timestamp(moment: datetime) -> str:
    """Fixed-width UTC ISO text, so string order is time order."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def connect(db_path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode with WAL and a busy timeout; creates the table if needed."""
    db_path = Path(db_path)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db_path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            conn.executescript(_SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};")
    except BaseException:
        conn.close()
        raise
    return conn


def _check_label(value: str | None, name: str, optional: bool = False) -> None:
    if value is None and optional:
        return
    if value not in LABELS:
        raise ValueError(f"{name}: expected one of {list(LABELS)}, got {value!r}")


def add_feedback(
    db_path: Path,
    item: Item,
    label: str,
    corrects: str | None = None,
    model_version: str | None = None,
    item_id: str | None = None,
    request: Mapping[str, Any] | None = None,
    created_at: datetime | None = None,
) -> FeedbackRecord:
    """Store one piece of feedback and return it with its id. Raises ValueError on a bad label."""
    _check_label(label, "label")
    _check_label(corrects, "corrects", optional=True)
    stamp = _timestamp(created_at or datetime.now(UTC))
    item_json = json.dumps(asdict(item), ensure_ascii=False, sort_keys=True)
    request_json = json.dumps(dict(request), ensure_ascii=False, sort_keys=True, default=str) if request is not None else None
    conn = connect(db_path)
    try:
        cur = conn.execute(
            "INSERT INTO feedback (created_at, label, corrects, model_version, item_id, item_json, request_json) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (stamp, label, corrects, model_version, item_id, item_json, request_json),
        )
        row_id = int(cur.lastrowid or 0)
    finally:
        conn.close()
    return FeedbackRecord(
        row_id,
        datetime.fromisoformat(stamp),
        label,
        corrects,
        model_version,
        item_id,
        json.loads(item_json),
        json.loads(request_json) if request_json else None,
    )


def list_feedback(
    db_path: Path, since: datetime | None = None, limit: int | None = None, after_id: int | None = None
) -> list[FeedbackRecord]:
    """Feedback oldest first; `since` keeps rows created at or after it, `after_id` rows with a larger id."""
    if not Path(db_path).exists():
        return []
    sql = f"SELECT {_COLUMNS} FROM feedback"
    where: list[str] = []
    args: list[Any] = []
    if since is not None:
        where.append("created_at >= ?")
        args.append(_timestamp(since))
    if after_id is not None:
        where.append("id > ?")
        args.append(int(after_id))
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(int(limit))
    conn = connect(db_path)
    try:
        rows = conn.execute(sql, args).fetchall()
    finally:
        conn.close()
    return [
        FeedbackRecord(
            int(r[0]),
            datetime.fromisoformat(r[1]),
            r[2],
            r[3],
            r[4],
            r[5],
            json.loads(r[6]),
            json.loads(r[7]) if r[7] else None,
        )
        for r in rows
    ]


def feedback_items(records: list[FeedbackRecord]) -> list[tuple[Item, str]]:
    """(Item, label) pairs for retraining."""
    return [(Item.from_mapping(r.item), r.label) for r in records]
