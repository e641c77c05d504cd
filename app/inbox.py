"""Reading inboxes for scoring: plain CSV, JSONL and LinkedIn's data export (`app/linkedin.py`).

Every reader yields `Record`s in input order: where the row came from (file and line), its
identifying columns, and either an `Item` to score, a reason it was skipped (the owner's own
message, a draft, ...) or a reason it failed. Readers never stop on a bad row and never lose
one; they stop only when an input goes over a limit (`app/sources.py`). `read_items` is the
entry point: it detects each input's format by content and returns an `Inbox` (iterable of
records plus what was learnt while reading: encodings, the account owner, notes).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import IO, Any

from app import sources
from app.items import CONTEXT_FIELDS, Item, ThreadMessage, build_item, parse_datetime
from app.linkedin import NO_CONVERSATIONS, is_connections_header, read_linkedin_export
from app.sources import LimitExceeded, Limits, ReadReport, Record, Source

__all__ = [
    "Inbox",
    "LimitExceeded",
    "Limits",
    "ReadReport",
    "Record",
    "detect_format",
    "read_items",
    "read_jsonl",
    "read_linkedin_export",
    "read_plain_csv",
]

FORMATS = ("auto", "csv", "jsonl", "linkedin")
ID_COLUMNS = (
    "file",
    "line",
    "id",
    "kind",
    "conversation_id",
    "sender_name",
    "sender_profile_url",
    "sent_at",
    "owner_replied_after",
)
PLAIN_COLUMNS = (
    "text",
    "id",
    "kind",
    "sender_name",
    "sender_headline",
    "sender_profile_url",
    "sender_company",
    "sender_connections",
    "mutual_connections",
    "sender_has_photo",
    "sender_account_age_days",
    "recipient_name",
    "sent_at",
    "connected_at",
    *CONTEXT_FIELDS,
)
PLAIN_ID_COLUMNS = ("file", "line", "id", "kind", "sender_name", "sender_profile_url", "sent_at")
LINKEDIN_ID_COLUMNS = tuple(c for c in ID_COLUMNS if c != "id")  # an export's messages have no id of their own


def _looks_linkedin(header: list[str]) -> bool:
    cells = set(header)
    return (
        {"from", "content"} <= cells
        or {"from", "to", "sent at", "direction"} <= cells
        or {"first name", "connected on"} <= cells
        or (header[:1] == ["notes:"])
    )


def detect_format(source: str | Path | IO[bytes] | Source) -> str:
    """'csv', 'jsonl' or 'linkedin', from the content (a folder or a zip is a LinkedIn export)."""
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        return "linkedin"
    src = sources.as_source(source)
    if sources.head(src, 4) == b"PK\x03\x04":
        return "linkedin"
    stripped = sources.sample_text(src).lstrip()
    if stripped.startswith("{"):
        return "jsonl"
    if stripped.lower().startswith(NO_CONVERSATIONS):
        return "linkedin"
    rows = sources.sample_rows(src)
    if rows and (_looks_linkedin(rows[0]) or any(is_connections_header(row) for row in rows)):
        return "linkedin"
    if rows and "text" in rows[0]:
        return "csv"
    raise ValueError(
        f"cannot tell the format of {src.name}: expected a CSV with a 'text' column, JSONL (one JSON object "
        "per line) or a LinkedIn export file; pass --format to say which"
    )


# --------------------------------------------------------------------------------------
# Plain CSV and JSONL
# --------------------------------------------------------------------------------------


def _flat_item(values: Mapping[str, Any], sender: Mapping[str, Any] | None = None, thread: Iterable | None = None) -> Item:
    """An Item from plain-CSV style fields (and, for JSONL, a sender object and a thread); '' means unknown."""
    get = values.get
    text = get("text")
    if sender is None:
        sender = {
            "name": get("sender_name"),
            "headline": get("sender_headline"),
            "profile_url": get("sender_profile_url"),
            "connections": get("sender_connections"),
            "mutual_connections": get("mutual_connections"),
            "has_photo": get("sender_has_photo"),
            "account_age_days": get("sender_account_age_days"),
        }
    sent_at, connected_at = get("sent_at"), get("connected_at")
    return build_item(
        "" if text is None else str(text),
        kind=get("kind") or "message",
        sender=sender,
        recipient_name=get("recipient_name"),
        sent_at=parse_datetime(sent_at, "sent_at") if sent_at else None,
        connected_at=parse_datetime(connected_at, "connected_at") if connected_at else None,
        thread=thread,
        **{name: value for name in CONTEXT_FIELDS if (value := get(name)) is not None and value != ""},
    )


def _plain_ids(name: str, line: int, values: Mapping[str, Any], sender: Mapping[str, Any] | None = None) -> dict[str, Any]:
    get = values.get
    sender_map: Mapping[str, Any] = sender or {}
    sender_get = sender_map.get
    return {
        "file": name,
        "line": line,
        "id": _text_or_none(get("id")),
        "kind": _text_or_none(get("kind")) or "message",
        "sender_name": _text_or_none(sender_get("name", get("sender_name"))),
        "sender_profile_url": _text_or_none(sender_get("profile_url", get("sender_profile_url"))),
        "sent_at": _text_or_none(get("sent_at")),
    }


def _text_or_none(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    return None if value is None else str(value)


def plain_csv_header(source: str | Path | IO[bytes] | Source) -> tuple[list[str], list[str]]:
    """(normalised header, carried-through column names) of a plain CSV; ValueError without a text column."""
    src = sources.as_source(source)
    for row in sources.sample_rows(src, max_rows=1):
        if "text" not in row:
            raise ValueError(f"{src.name}: the header has no 'text' column (columns: {', '.join(row)})")
        first = next(r for _, r, _ in sources.csv_records(src, None, Limits(record_lines=1)) if r is not None)
        carried = [cell.strip() for cell, low in zip(first, row, strict=False) if low not in PLAIN_COLUMNS and low]
        return row, carried
    raise ValueError(f"{src.name}: the file is empty")


def read_plain_csv(
    source: str | Path | IO[bytes] | Source, report: ReadReport | None = None, limits: Limits | None = None
) -> Iterator[Record]:
    """Records from a CSV with a `text` column; other known columns optional, unknown ones carried through."""
    src = sources.as_source(source)
    header, _ = plain_csv_header(src)
    width = len(header)
    carried = [(i, header_cell) for i, header_cell in enumerate(header) if header_cell not in PLAIN_COLUMNS and header_cell]
    original_header: list[str] | None = None
    for line, row, problem in sources.csv_records(src, report, limits or Limits()):
        if original_header is None and row is not None:
            original_header = [c.strip() for c in row]
            continue
        if row is None:
            yield Record(src.name, line, {"file": src.name, "line": line}, error=problem)
            continue
        values = dict(zip(header, row, strict=False))
        ids = _plain_ids(src.name, line, values)
        assert original_header is not None  # set by the first record
        extra = {original_header[i]: (row[i] if i < len(row) else "") for i, _ in carried}
        if len(row) > width:
            yield Record(src.name, line, ids, extra, error=f"the row has {len(row)} fields, the header has {width}")
            continue
        try:
            item = _flat_item(values)
        except ValueError as exc:
            yield Record(src.name, line, ids, extra, error=str(exc))
            continue
        ids["kind"] = item.kind
        yield Record(src.name, line, ids, extra, item=item)


def _jsonl_item(obj: Mapping[str, Any]) -> Item:
    if "text" not in obj:
        raise ValueError("text: missing")
    if obj["text"] is not None and not isinstance(obj["text"], str):
        raise ValueError(f"text: expected a string, got {type(obj['text']).__name__}")
    sender = obj.get("sender")
    if sender is not None and not isinstance(sender, Mapping):
        raise ValueError("sender: expected an object")
    recipient = obj.get("recipient")
    if recipient is not None and not isinstance(recipient, Mapping):
        raise ValueError("recipient: expected an object")
    raw_thread = obj.get("thread")
    if raw_thread is not None and not isinstance(raw_thread, list):
        raise ValueError("thread: expected a list")
    thread: list[ThreadMessage] | None = None if raw_thread is None else []
    for n, message in enumerate(raw_thread or [], 1):
        if not isinstance(message, Mapping):
            raise ValueError(f"thread[{n}]: expected an object")
        thread.append(  # type: ignore[union-attr]
            ThreadMessage(
                direction=str(message.get("direction", "")),
                text=str(message.get("text") or ""),
                sent_at=parse_datetime(message.get("sent_at"), f"thread[{n}].sent_at"),
            )
        )
    values = dict(obj)
    if recipient is not None:
        values["recipient_name"] = recipient.get("name")
    return _flat_item(values, sender=dict(sender) if sender is not None else None, thread=thread)


def read_jsonl(
    source: str | Path | IO[bytes] | Source, report: ReadReport | None = None, limits: Limits | None = None
) -> Iterator[Record]:
    """Records from JSONL: one service item per line ({"text", "kind", "sender": {...}, "thread": [...]})."""
    src = sources.as_source(source)
    for line, raw in sources.text_lines(src, report, limits or Limits()):
        if raw is None:
            yield Record(src.name, line, {"file": src.name, "line": line}, error="the line is over the length limit")
            continue
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, 4,300+ digit integers, deep nesting
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc).split(";")[0]
            yield Record(src.name, line, {"file": src.name, "line": line}, error=f"not valid JSON: {reason}")
            continue
        if not isinstance(obj, dict):
            yield Record(src.name, line, {"file": src.name, "line": line}, error="expected a JSON object")
            continue
        sender = obj.get("sender") if isinstance(obj.get("sender"), Mapping) else None
        ids = _plain_ids(src.name, line, obj, sender)
        try:
            item = _jsonl_item(obj)
        except ValueError as exc:
            yield Record(src.name, line, ids, error=str(exc))
            continue
        ids["kind"] = item.kind
        yield Record(src.name, line, ids, item=item)


# --------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------


class Inbox:
    """Records from one or more inputs, in order; `report` fills in while iterating."""

    def __init__(
        self,
        parts: list[tuple[str, Callable[[], Iterator[Record]]]],
        extra_columns: list[str],
        report: ReadReport,
        limits: Limits | None = None,
    ):
        self._parts = parts
        self.extra_columns = extra_columns
        self.report = report
        self.limits = limits or Limits()
        self.formats = [fmt for fmt, _ in parts]

    @property
    def id_columns(self) -> tuple[str, ...]:
        wanted: set[str] = set()
        for fmt in self.formats:
            wanted.update(LINKEDIN_ID_COLUMNS if fmt == "linkedin" else PLAIN_ID_COLUMNS)
        return tuple(c for c in ID_COLUMNS if c in wanted)

    def __iter__(self) -> Iterator[Record]:
        rows = 0
        for _, make in self._parts:
            for record in make():
                rows += 1
                if rows > self.limits.rows:
                    raise LimitExceeded(f"{record.file}: line {record.line}", "TRIAGE_MAX_ROWS", self.limits.rows)
                self.report.rows = rows
                yield record


def read_items(
    inputs: str | Path | IO[bytes] | Iterable[str | Path | IO[bytes]],
    format: str = "auto",
    me: str | None = None,
    report: ReadReport | None = None,
    limits: Limits | None = None,
) -> Inbox:
    """Open inputs (paths or binary file objects) for reading; formats are checked now, rows read lazily.

    Raises FileNotFoundError or ValueError (unknown format, no text column) before any
    row is read. All LinkedIn inputs are read as one export, so Connections.csv or
    Invitations.csv passed next to messages.csv give it context.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    if isinstance(inputs, (str, Path)) or hasattr(inputs, "read"):
        inputs = [inputs]  # type: ignore[list-item]
    report = report if report is not None else ReadReport()
    limits = limits or Limits()
    parts: list[tuple[str, Callable[[], Iterator[Record]]]] = []
    extra: list[str] = []
    linkedin: list[Any] = []
    for value in inputs:  # type: ignore[union-attr]
        is_dir = isinstance(value, (str, Path)) and Path(value).is_dir()
        source = value if is_dir else sources.as_source(value)
        fmt = format if format != "auto" else detect_format(value if is_dir else source)  # type: ignore[arg-type]
        if is_dir and fmt != "linkedin":
            raise ValueError(f"{value} is a folder: only a LinkedIn export can be a folder")
        if fmt == "linkedin":
            if not linkedin:
                parts.append(("linkedin", lambda: read_linkedin_export(linkedin, me=me, report=report, limits=limits)))
            linkedin.append(source)
        elif fmt == "jsonl":
            parts.append(("jsonl", partial(read_jsonl, source, report, limits)))
        else:
            _, carried = plain_csv_header(source)  # type: ignore[arg-type]
            extra += [c for c in carried if c not in extra]
            parts.append(("csv", partial(read_plain_csv, source, report, limits)))
    if not parts:
        raise ValueError("no input given")
    return Inbox(parts, extra, report, limits)
