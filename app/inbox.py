"""Reading inboxes for batch scoring: plain CSV, JSONL and LinkedIn's data export.

Every reader yields `Record`s in input order: where the row came from (file and
line), its identifying columns, and either an `Item` to score, a reason it was
skipped (the owner's own message, a draft, ...) or a reason it failed. Readers never
stop on a bad row. `read_items` is the entry point: it detects each input's format
by content and returns an `Inbox` (iterable of records plus what was learnt while
reading: encodings, the account owner, notes).

Inputs are paths (files, unpacked export folders, export zips) or binary file-like
objects (an upload). Text is decoded as UTF-8 (with or without BOM), else cp1252.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import html
import io
import json
import re
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import IO, Any

from app.items import CONTEXT_FIELDS, Item, ThreadMessage, build_item, parse_datetime

FORMATS = ("auto", "csv", "jsonl", "linkedin")
ID_COLUMNS = ("file", "line", "id", "kind", "conversation_id", "sender_name", "sender_profile_url", "sent_at")
PLAIN_COLUMNS = (
    "text",
    "id",
    "kind",
    "sender_name",
    "sender_headline",
    "sender_profile_url",
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
LINKEDIN_ID_COLUMNS = ("file", "line", "kind", "conversation_id", "sender_name", "sender_profile_url", "sent_at")

# Reasons a record is skipped (counted, not scored, not an error).
OWN_MESSAGE = "own message"
DRAFT = "draft"
EMPTY_MESSAGE = "empty message"
OUTGOING_INVITATION = "outgoing invitation"
NO_NOTE = "invitation without a note"
COACH_FILE = "AI-coach file"

_SAMPLE_BYTES = 64 * 1024
_READ_BYTES = 1 << 20
_NO_CONVERSATIONS = "no conversations found"
_ANONYMOUS = {"linkedin member", "linkedin"}
_COACH_WORDS = ("coach", "guide", "learning", "role_play", "roleplay")


@dataclass(slots=True)
class Record:
    """One input row: an item to score, or why it was skipped, or why it failed."""

    file: str
    line: int
    ids: dict[str, Any]
    extra: dict[str, str] = field(default_factory=dict)
    item: Item | None = None
    skipped: str | None = None
    error: str | None = None


@dataclass
class ReadReport:
    """What reading learnt: each file's encoding, the account owner, notes for the user."""

    encodings: dict[str, str] = field(default_factory=dict)
    owner: str | None = None
    owner_how: str | None = None
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------
# Sources: a path, a zip member or a borrowed file-like object, opened as bytes
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    name: str
    open: Callable[[], contextlib.AbstractContextManager[IO[bytes]]]


def _path_source(path: Path, name: str | None = None) -> _Source:
    return _Source(name or str(path), lambda: open(path, "rb"))


def _borrowed_source(obj: IO[bytes], name: str | None = None) -> _Source:
    """A binary file-like object, re-read from where it stood; never closed here."""
    if not (hasattr(obj, "seekable") and obj.seekable()):
        obj = io.BytesIO(obj.read())
    start = obj.tell()
    raw_name = getattr(obj, "name", None)
    label = name or (Path(raw_name).name if isinstance(raw_name, str) and raw_name else "upload")

    @contextlib.contextmanager
    def opener() -> Iterator[IO[bytes]]:
        obj.seek(start)
        yield obj

    return _Source(label, opener)


def _as_source(value: str | Path | IO[bytes] | _Source) -> _Source:
    if isinstance(value, _Source):
        return value
    if isinstance(value, (str, Path)):
        path = Path(value)
        if not path.exists():
            raise FileNotFoundError(f"no such file or folder: {path}")
        return _path_source(path)
    if isinstance(value, io.TextIOBase):
        raise TypeError("open the file in binary mode ('rb'): the encoding is detected from its bytes")
    if hasattr(value, "read"):
        return _borrowed_source(value)
    raise TypeError(f"expected a path or a binary file object, got {type(value).__name__}")


def _head(source: _Source, size: int = _SAMPLE_BYTES) -> bytes:
    with source.open() as fh:
        return fh.read(size)


def detect_encoding(source: _Source, report: ReadReport | None = None) -> str:
    """'utf-8-sig' when the whole file is valid UTF-8 (BOM or not), else 'cp1252'."""
    if report is not None and source.name in report.encodings:
        return _CODEC[report.encodings[source.name]]
    decoder = codecs.getincrementaldecoder("utf-8")()
    valid = True
    with source.open() as fh:
        first = fh.read(3)
        bom = first == codecs.BOM_UTF8
        chunk = first
        try:
            while chunk:
                decoder.decode(chunk)
                chunk = fh.read(_READ_BYTES)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            valid = False
    label = ("utf-8 with BOM" if bom else "utf-8") if valid else "cp1252"
    if report is not None:
        report.encodings[source.name] = label
    return _CODEC[label]


_CODEC = {"utf-8": "utf-8-sig", "utf-8 with BOM": "utf-8-sig", "cp1252": "cp1252"}


@contextlib.contextmanager
def _open_text(source: _Source, report: ReadReport | None) -> Iterator[IO[str]]:
    encoding = detect_encoding(source, report)
    with source.open() as fh:
        text = io.TextIOWrapper(fh, encoding=encoding, errors="replace", newline="")
        try:
            yield text
        finally:
            text.detach()  # leave a borrowed file object open


def _csv_rows(text: IO[str], source_name: str) -> Iterator[tuple[int, list[str] | None, str | None]]:
    """(first line, cells, None) per non-blank CSV record; (line, None, reason) when a record cannot be parsed."""
    if csv.field_size_limit() < 16 * 1024 * 1024:
        csv.field_size_limit(16 * 1024 * 1024)
    reader = csv.reader(text)
    last_line = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            start, last_line = last_line + 1, reader.line_num
            yield start, None, f"cannot parse the CSV record: {exc}"
            if reader.line_num == start - 1:
                return
            continue
        start, last_line = last_line + 1, reader.line_num
        if any(cell.strip() for cell in row):
            yield start, row, None


def _norm_header(cells: Iterable[str]) -> list[str]:
    return [c.strip().lower() for c in cells]


def _blank(value: Any) -> Any:
    return None if value is None or (isinstance(value, str) and not value.strip()) else value


# --------------------------------------------------------------------------------------
# Format detection
# --------------------------------------------------------------------------------------


def _looks_linkedin(header: list[str]) -> bool:
    cells = set(header)
    return (
        {"from", "content"} <= cells
        or {"from", "to", "sent at", "direction"} <= cells
        or {"first name", "connected on"} <= cells
        or (header[:1] == ["notes:"])
    )


def detect_format(source: str | Path | IO[bytes]) -> str:
    """'csv', 'jsonl' or 'linkedin', from the content (a folder or a zip is a LinkedIn export)."""
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        return "linkedin"
    src = _as_source(source)
    head = _head(src)
    if head.startswith(b"PK\x03\x04"):
        return "linkedin"
    try:
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(head)
    except UnicodeDecodeError:
        text = head.decode("cp1252", errors="replace")
    stripped = text.lstrip()
    if stripped.startswith("{"):
        return "jsonl"
    if stripped.lower().startswith(_NO_CONVERSATIONS):
        return "linkedin"
    lines = stripped.splitlines(keepends=True)
    if len(head) == _SAMPLE_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut
    with contextlib.suppress(csv.Error):
        rows = [_norm_header(row) for row in csv.reader(lines)]
        rows = [row for row in rows if any(row)][:20]
        if rows and (_looks_linkedin(rows[0]) or any(_is_connections_header(row) for row in rows)):
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
        **{name: get(name) for name in CONTEXT_FIELDS},
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


def plain_csv_header(source: str | Path | IO[bytes] | _Source, report: ReadReport | None = None) -> tuple[list[str], list[str]]:
    """(normalised header, carried-through column names) of a plain CSV; ValueError without a text column."""
    src = _as_source(source)
    with _open_text(src, report) as text:
        for _, row, _ in _csv_rows(text, src.name):
            if row is None:
                continue
            header = _norm_header(row)
            if "text" not in header:
                raise ValueError(f"{src.name}: the header has no 'text' column (columns: {', '.join(row)})")
            carried = [cell.strip() for cell, low in zip(row, header, strict=True) if low not in PLAIN_COLUMNS and low]
            return header, carried
    raise ValueError(f"{src.name}: the file is empty")


def read_plain_csv(source: str | Path | IO[bytes] | _Source, report: ReadReport | None = None) -> Iterator[Record]:
    """Records from a CSV with a `text` column; other known columns optional, unknown ones carried through."""
    src = _as_source(source)
    header, _ = plain_csv_header(src, report)
    width = len(header)
    carried = [(i, header_cell) for i, header_cell in enumerate(header) if header_cell not in PLAIN_COLUMNS and header_cell]
    with _open_text(src, report) as text:
        rows = _csv_rows(text, src.name)
        original_header: list[str] | None = None
        for line, row, problem in rows:
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


def read_jsonl(source: str | Path | IO[bytes] | _Source, report: ReadReport | None = None) -> Iterator[Record]:
    """Records from JSONL: one service item per line ({"text", "kind", "sender": {...}, "thread": [...]})."""
    src = _as_source(source)
    encoding = detect_encoding(src, report)
    with src.open() as fh:
        text = io.TextIOWrapper(fh, encoding=encoding, errors="replace")
        try:
            for line, raw in enumerate(text, 1):
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
        finally:
            text.detach()


# --------------------------------------------------------------------------------------
# LinkedIn export: dates, people, the account owner
# --------------------------------------------------------------------------------------

_EXPORT_TIME_FORMATS = ("%m/%d/%y, %I:%M %p", "%m/%d/%Y, %I:%M %p", "%m/%d/%y, %H:%M", "%m/%d/%Y, %H:%M", "%d %b %Y", "%m/%d/%y")


def parse_export_time(value: Any, field_name: str) -> datetime | None:
    """A LinkedIn export time: ISO ('2024-05-01 10:00:00 UTC'), 'M/D/YY, h:mm AM' or 'DD Mon YYYY'; naive = UTC."""
    text = re.sub(r"[\u202f\xa0\s]+", " ", str(value or "")).strip()
    if not text:
        return None
    with contextlib.suppress(ValueError):
        return parse_datetime(text, field_name)
    for fmt in _EXPORT_TIME_FORMATS:
        with contextlib.suppress(ValueError):
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
    raise ValueError(f"{field_name}: cannot read the date {value!r}")


def normalise_url(url: str | None) -> str:
    """A profile URL without scheme, 'www.', query or trailing slash, lower-cased."""
    text = (url or "").strip().lower()
    text = re.sub(r"^[a-z]+://", "", text)
    text = re.sub(r"^www\.", "", text)
    return re.split(r"[?#]", text, maxsplit=1)[0].rstrip("/")


def _name_key(name: str | None) -> str:
    return " ".join(html.unescape(name or "").split()).casefold()


def _is_url(value: str) -> bool:
    low = value.strip().lower()
    return low.startswith(("http://", "https://", "www.")) or "linkedin.com/" in low or "/in/" in low


@dataclass
class Owner:
    """The account owner: the names and profile URLs that mean 'me' in the export."""

    names: set[str]
    urls: set[str]
    display: str
    how: str

    @classmethod
    def from_me(cls, me: str) -> Owner:
        if _is_url(me):
            return cls(set(), {normalise_url(me)}, me.strip(), "given with --me")
        return cls({_name_key(me)}, set(), me.strip(), "given with --me")

    def matches(self, name: str | None, url: str | None) -> bool:
        if url and url.strip() and self.urls:
            return normalise_url(url) in self.urls
        key = _name_key(name)
        return bool(key) and key not in _ANONYMOUS and key in self.names


class _OwnerEvidence:
    """Counts gathered in one pass over messages.csv to find who the owner is."""

    def __init__(self) -> None:
        self.conversations: Counter[tuple[str, str]] = Counter()  # identity -> conversations it is in
        self.as_recipient: Counter[tuple[str, str]] = Counter()
        self.url_names: Counter[tuple[str, str]] = Counter()  # (url, name) seen together as sender
        self.single_recipient: Counter[tuple[str, str]] = Counter()  # (url, to-name) for one-recipient rows
        self.display: dict[str, str] = {}
        self.has_recipient_urls = False
        self._block: set[tuple[str, str]] = set()

    def _name(self, name: str) -> tuple[str, str] | None:
        key = _name_key(name)
        if not key or key in _ANONYMOUS:
            return None
        self.display.setdefault(key, " ".join(html.unescape(name).split()))
        return ("name", key)

    def add_row(self, row: Mapping[str, str]) -> None:
        sender_name, sender_url = row.get("from", ""), normalise_url(row.get("sender profile url"))
        to = row.get("to", "")
        urls = [normalise_url(u) for u in (row.get("recipient profile urls") or "").split(",") if u.strip()]
        if urls:
            self.has_recipient_urls = True
        ids: set[tuple[str, str]] = set()
        recipients: set[tuple[str, str]] = set()
        if sender_url:
            ids.add(("url", sender_url))
            key = _name_key(sender_name)
            if key and key not in _ANONYMOUS:
                self.url_names[(sender_url, key)] += 1
        if (n := self._name(sender_name)) is not None:
            ids.add(n)
        for part in {to, *to.split(", ")}:
            if (n := self._name(part)) is not None:
                recipients.add(n)
        recipients.update(("url", u) for u in urls)
        if len(urls) == 1 and (n := self._name(to)) is not None:
            self.single_recipient[(urls[0], n[1])] += 1
        self._block |= ids | recipients
        self.as_recipient.update(recipients)

    def end_conversation(self) -> None:
        self.conversations.update(self._block)
        self._block = set()

    def owner(self) -> Owner | None:
        self.end_conversation()
        kind = "url" if self.has_recipient_urls else "name"
        candidates = [(n, self.as_recipient[i], i) for i, n in self.conversations.items() if i[0] == kind]
        if not candidates:
            return None
        candidates.sort(key=lambda c: (-c[0], -c[1], c[2]))
        n_conv, _, (_, value) = candidates[0]
        how = f"inferred from messages: in {n_conv} conversation{'s' if n_conv != 1 else ''}"
        if len(candidates) > 1 and candidates[1][:2] == candidates[0][:2]:
            how += " (a tie: pass --me to be sure)"
        if kind == "url":
            names = {name for (url, name) in self.url_names if url == value}
            names |= {name for (url, name) in self.single_recipient if url == value}
            shown = max(names, key=lambda k: self.url_names[(value, k)] + self.single_recipient[(value, k)], default=None)
            return Owner(names, {value}, self.display.get(shown, value) if shown else value, how)
        urls = {url for (url, name) in self.url_names if name == value}
        return Owner({value}, urls, self.display.get(value, value), how)

    def aliases_for(self, owner: Owner) -> None:
        """Add the names used with the owner's URLs and the URLs used with the owner's names."""
        for url, name in list(self.url_names) + list(self.single_recipient):
            if url in owner.urls:
                owner.names.add(name)
        if not owner.urls:
            owner.urls.update(url for url, name in self.url_names if name in owner.names)


# --------------------------------------------------------------------------------------
# LinkedIn export: files
# --------------------------------------------------------------------------------------


def _classify_name(name: str) -> str | None:
    base = name.replace("\\", "/").rsplit("/", 1)[-1].lower()
    if not base.endswith(".csv"):
        return None
    if base == "messages.csv":
        return "messages"
    if base == "invitations.csv":
        return "invitations"
    if base == "connections.csv":
        return "connections"
    if base.endswith("messages.csv") and any(w in base for w in _COACH_WORDS):
        return "coach"
    return None


def _classify_content(source: _Source) -> str | None:
    head = _head(source)
    try:
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(head)
    except UnicodeDecodeError:
        text = head.decode("cp1252", errors="replace")
    if text.strip().lower().startswith(_NO_CONVERSATIONS):
        return "messages"
    with contextlib.suppress(csv.Error):
        for i, row in enumerate(csv.reader(text.splitlines())):
            cells = set(_norm_header(row))
            if {"from", "content"} <= cells:
                return "messages"
            if {"from", "to", "sent at", "direction"} <= cells:
                return "invitations"
            if {"first name", "connected on"} <= cells:
                return "connections"
            if i > 20:
                break
    return None


def _table(source: _Source, report: ReadReport | None, is_header: Callable[[list[str]], bool]) -> Iterator[tuple[int, Any]]:
    """(line, {column: value}) rows after the first row that `is_header` accepts; (line, str) for broken rows."""
    with _open_text(source, report) as text:
        header: list[str] | None = None
        for line, row, problem in _csv_rows(text, source.name):
            if row is None:
                if header is not None:
                    yield line, problem
                continue
            if header is None:
                low = _norm_header(row)
                if is_header(low):
                    header = low
                continue
            if len(row) > len(header):
                yield line, f"the row has {len(row)} fields, the header has {len(header)}"
                continue
            yield line, dict(zip(header, (c.strip() for c in row), strict=False))


def _is_messages_header(h: list[str]) -> bool:
    return "from" in h and "content" in h


def _is_invitations_header(h: list[str]) -> bool:
    return {"from", "to", "direction"} <= set(h)


def _is_connections_header(h: list[str]) -> bool:
    return "first name" in h and "connected on" in h


class _People:
    """When the owner connected with whom: Connections.csv dates, refined by invitation times."""

    def __init__(self) -> None:
        self.by_url: dict[str, datetime] = {}
        self.by_name: dict[str, datetime | None] = {}  # None: two people of that name
        self.connections: set[str] = set()  # url and name keys of Connections.csv rows
        self.has_connections = False

    def is_connection(self, name: str, url: str) -> bool | None:
        """True or False when Connections.csv was read, None when it was not."""
        if not self.has_connections:
            return None
        keys = {normalise_url(url), "name:" + _name_key(name)} - {"", "name:"}
        return bool(keys & self.connections)

    def add_connection(self, name: str, url: str, day: datetime) -> None:
        self.connections.update({normalise_url(url), "name:" + _name_key(name)} - {"", "name:"})
        if key := normalise_url(url):
            self.by_url[key] = day
        if key := _name_key(name):
            self.by_name[key] = day if self.by_name.get(key, day) == day else None

    def add_invitation(self, name: str, url: str, when: datetime) -> None:
        """An invitation's exact time wins over a Connections date of the same day, or stands alone."""
        for table, key in ((self.by_url, normalise_url(url)), (self.by_name, _name_key(name))):
            if not key:
                continue
            if key not in table:
                table[key] = when
            elif (old := table[key]) is not None and old.date() == when.date():
                table[key] = when

    def connected_at(self, name: str, url: str) -> datetime | None:
        if url and (hit := self.by_url.get(normalise_url(url))):
            return hit
        return self.by_name.get(_name_key(name))


def _message_text(value: str | None) -> str:
    return value or ""


def _decoded(value: str | None) -> str | None:
    return " ".join(html.unescape(value).split()) if value and value.strip() else None


class _Export:
    """A LinkedIn export spread over folders, zips and single files."""

    def __init__(self, inputs: Iterable[str | Path | IO[bytes]], me: str | None, report: ReadReport) -> None:
        self.inputs = list(inputs)
        self.me = me
        self.report = report

    def _members(self, stack: contextlib.ExitStack) -> list[tuple[str, _Source]]:
        found: list[tuple[str, _Source]] = []
        for value in self.inputs:
            if isinstance(value, (str, Path)) and Path(value).is_dir():
                root = Path(value)
                for path in sorted(p for p in root.rglob("*") if p.is_file()):
                    kind = _classify_name(path.name)
                    if kind:
                        found.append((kind, _path_source(path)))
                continue
            src = _as_source(value)
            if _head(src, 4) == b"PK\x03\x04":
                fh = stack.enter_context(src.open())
                archive = stack.enter_context(zipfile.ZipFile(fh))
                zip_name = Path(src.name).name
                for info in sorted(archive.infolist(), key=lambda i: i.filename):
                    if info.is_dir() or "__MACOSX" in info.filename:
                        continue
                    kind = _classify_name(info.filename)
                    if kind:
                        member = _Source(f"{zip_name}:{info.filename}", partial(archive.open, info))
                        found.append((kind, member))
                continue
            kind = _classify_name(src.name) or _classify_content(src)
            if kind is None:
                raise ValueError(f"{src.name}: not a LinkedIn messages, invitations or connections file")
            found.append((kind, src))
        return found

    def records(self) -> Iterator[Record]:
        with contextlib.ExitStack() as stack:
            members = self._members(stack)
            kinds = Counter(kind for kind, _ in members)
            if not members or not (kinds["messages"] or kinds["invitations"] or kinds["coach"]):
                self.report.notes.append("no messages.csv or Invitations.csv found in the LinkedIn export")
            people = _People()
            for kind, src in members:
                if kind == "connections":
                    self._read_connections(src, people)
            invitations = [src for kind, src in members if kind == "invitations"]
            messages = [src for kind, src in members if kind == "messages"]
            evidence = _OwnerEvidence()
            invite_owner: Counter[tuple[str, str]] = Counter()
            for src in invitations:
                self._scan_invitations(src, people, invite_owner)
            for src in messages:
                self._scan_messages(src, evidence)
            owner = self._owner(evidence, invite_owner)
            for src in messages:
                yield from self._read_messages(src, owner, people)
            for src in invitations:
                yield from self._read_invitations(src)
            for kind, src in members:
                if kind == "coach":
                    yield from self._read_coach(src)

    # -- context files ----------------------------------------------------------------
    def _read_connections(self, src: _Source, people: _People) -> None:
        people.has_connections = True
        for _, row in _table(src, self.report, _is_connections_header):
            if isinstance(row, str):
                continue
            name = f"{row.get('first name', '')} {row.get('last name', '')}".strip()
            url = row.get("url", "")
            if not name and not url:
                continue  # a hidden profile: only a date
            with contextlib.suppress(ValueError):
                when = parse_export_time(row.get("connected on"), "Connected On")
                if when is not None:
                    people.add_connection(name, url, when)

    def _scan_invitations(self, src: _Source, people: _People, owner: Counter[tuple[str, str]]) -> None:
        for _, row in _table(src, self.report, _is_invitations_header):
            if isinstance(row, str):
                continue
            direction = row.get("direction", "").upper()
            if direction == "OUTGOING":
                me_name, me_url = row.get("from", ""), row.get("inviterprofileurl", "")
                other_name, other_url = row.get("to", ""), row.get("inviteeprofileurl", "")
            elif direction == "INCOMING":
                me_name, me_url = row.get("to", ""), row.get("inviteeprofileurl", "")
                other_name, other_url = row.get("from", ""), row.get("inviterprofileurl", "")
            else:
                continue
            if _name_key(me_name):
                owner[("name", me_name.strip())] += 1
            if me_url:
                owner[("url", normalise_url(me_url))] += 1
            with contextlib.suppress(ValueError):
                when = parse_export_time(row.get("sent at"), "Sent At")
                if when is not None:
                    people.add_invitation(other_name, other_url, when)

    def _scan_messages(self, src: _Source, evidence: _OwnerEvidence) -> None:
        previous = None
        for _, row in _table(src, self.report, _is_messages_header):
            if isinstance(row, str):
                continue
            key = _conversation_key(row)
            if previous is not None and key != previous:
                evidence.end_conversation()
            previous = key
            evidence.add_row(row)
        evidence.end_conversation()

    def _owner(self, evidence: _OwnerEvidence, invite_owner: Counter[tuple[str, str]]) -> Owner | None:
        owner: Owner | None
        if self.me:
            owner = Owner.from_me(self.me)
        elif invite_owner:
            names = [v for (k, v), _ in invite_owner.most_common() if k == "name"]
            urls = {v for (k, v) in invite_owner if k == "url"}
            top = names[0] if names else next(iter(urls))
            owner = Owner({_name_key(top)} if names else set(), urls, top, "inferred from Invitations.csv")
        else:
            owner = evidence.owner()
        if owner is None:
            self.report.notes.append("the account owner could not be inferred: every message counts as received (pass --me)")
            return None
        evidence.aliases_for(owner)
        self.report.owner, self.report.owner_how = owner.display, owner.how
        return owner

    # -- scored files -----------------------------------------------------------------
    def _read_messages(self, src: _Source, owner: Owner | None, people: _People) -> Iterator[Record]:
        block: list[tuple[int, dict[str, str]]] = []
        previous = None
        for line, row in _table(src, self.report, _is_messages_header):
            if isinstance(row, str):
                yield Record(src.name, line, {"file": src.name, "line": line, "kind": "message"}, error=row)
                continue
            key = _conversation_key(row)
            if block and key != previous:
                yield from self._conversation(src.name, block, owner, people)
                block = []
            previous = key
            block.append((line, row))
        if block:
            yield from self._conversation(src.name, block, owner, people)

    def _conversation(
        self, name: str, block: list[tuple[int, dict[str, str]]], owner: Owner | None, people: _People
    ) -> Iterator[Record]:
        """Records of one conversation in file order, with thread context from its chronology."""
        out: dict[int, Record] = {}
        timeline: list[tuple[datetime, int, int, dict[str, str], bool]] = []  # (time, -position, line, row, own)
        for position, (line, row) in enumerate(block):
            ids = {
                "file": name,
                "line": line,
                "kind": "message",
                "conversation_id": row.get("conversation id") or None,
                "sender_name": _decoded(row.get("from")),
                "sender_profile_url": row.get("sender profile url") or None,
                "sent_at": row.get("date") or None,
            }
            if _yes(row.get("is message draft")) or _yes(row.get("is conversation draft")):
                out[line] = Record(name, line, ids, skipped=DRAFT)
                continue
            try:
                when = parse_export_time(row.get("date"), "DATE")
            except ValueError as exc:
                out[line] = Record(name, line, ids, error=str(exc))
                continue
            if when is not None:
                ids["sent_at"] = when.isoformat()
            own = _is_own(row, owner)
            if own:
                out[line] = Record(name, line, ids, skipped=OWN_MESSAGE)
            elif not (row.get("content") or "").strip():
                out[line] = Record(name, line, ids, skipped=EMPTY_MESSAGE)
            else:
                out[line] = Record(name, line, ids)
            stamp = when or datetime.min.replace(tzinfo=UTC)
            timeline.append((stamp, -position, line, row, own))
        timeline.sort(key=lambda t: (t[0], t[1]))
        last_own = max((i for i, t in enumerate(timeline) if t[4]), default=-1)
        history: list[tuple[str, ThreadMessage]] = []  # (sender key or "", message) so far, oldest first
        for position, (when, _, line, row, own) in enumerate(timeline):
            message = ThreadMessage("outbound" if own else "inbound", _message_text(row.get("content")), when)
            sender = "" if own else (normalise_url(row.get("sender profile url")) or "name:" + _name_key(row.get("from")))
            record = out[line]
            if not own and record.skipped is None:
                thread = [m for key, m in history if key in ("", sender)]
                try:
                    record.item = self._message_item(row, owner, people, when, thread, owner_replied_after=position < last_own)
                except ValueError as exc:
                    record.error = str(exc)
            history.append((sender, message))
        for line in sorted(out):
            yield out[line]

    @staticmethod
    def _message_item(
        row: Mapping[str, str],
        owner: Owner | None,
        people: _People,
        when: datetime,
        thread: list[ThreadMessage],
        owner_replied_after: bool | None,
    ) -> Item:
        sender_name = _decoded(row.get("from"))
        url = row.get("sender profile url", "")
        recipient = owner.display if owner and owner.names and not _is_url(owner.display) else _decoded(row.get("to"))
        sent_at = when if when.year > 1 else None
        return build_item(
            _message_text(row.get("content")),
            kind="message",
            sender={"name": sender_name, "profile_url": url or None},
            recipient_name=recipient,
            sent_at=sent_at,
            connected_at=people.connected_at(sender_name or "", url) if sent_at else None,
            thread=thread,
            is_connection=people.is_connection(sender_name or "", url),
            owner_replied_after=owner_replied_after if owner is not None else None,
        )

    def _read_invitations(self, src: _Source) -> Iterator[Record]:
        for line, row in _table(src, self.report, _is_invitations_header):
            if isinstance(row, str):
                yield Record(src.name, line, {"file": src.name, "line": line, "kind": "invite"}, error=row)
                continue
            ids = {
                "file": src.name,
                "line": line,
                "kind": "invite",
                "sender_name": _decoded(row.get("from")),
                "sender_profile_url": row.get("inviterprofileurl") or None,
                "sent_at": row.get("sent at") or None,
            }
            direction = row.get("direction", "").upper()
            if direction == "OUTGOING":
                yield Record(src.name, line, ids, skipped=OUTGOING_INVITATION)
                continue
            if direction != "INCOMING":
                yield Record(src.name, line, ids, error=f"Direction: expected INCOMING or OUTGOING, got {direction!r}")
                continue
            try:
                when = parse_export_time(row.get("sent at"), "Sent At")
                if when is not None:
                    ids["sent_at"] = when.isoformat()
                note = _message_text(row.get("message"))
                if not note.strip():
                    yield Record(src.name, line, ids, skipped=NO_NOTE)
                    continue
                item = build_item(
                    note,
                    kind="invite",
                    sender={"name": _decoded(row.get("from")), "profile_url": row.get("inviterprofileurl") or None},
                    recipient_name=_decoded(row.get("to")),
                    sent_at=when,
                    is_connection=False,
                )
            except ValueError as exc:
                yield Record(src.name, line, ids, error=str(exc))
                continue
            yield Record(src.name, line, ids, item=item)

    def _read_coach(self, src: _Source) -> Iterator[Record]:
        for line, row in _table(src, self.report, _is_messages_header):
            ids = {"file": src.name, "line": line, "kind": "message"}
            if not isinstance(row, str):
                ids.update(conversation_id=row.get("conversation id") or None, sender_name=_decoded(row.get("from")))
            yield Record(src.name, line, ids, skipped=COACH_FILE)


def _yes(value: str | None) -> bool:
    return (value or "").strip().lower() in {"yes", "true", "1"}


def _conversation_key(row: Mapping[str, str]) -> tuple[str, ...]:
    cid = (row.get("conversation id") or "").strip()
    if cid:
        return ("id", cid)
    pair = sorted({_name_key(row.get("from")), _name_key(row.get("to"))})
    return ("people", _name_key(row.get("conversation title")), *pair)


def _is_own(row: Mapping[str, str], owner: Owner | None) -> bool:
    direction = (row.get("direction") or "").strip().upper()
    if direction in ("OUTGOING", "SENT"):
        return True
    if direction == "INCOMING":
        return False
    if (row.get("folder") or "").strip().upper() == "SENT":
        return True
    return owner is not None and owner.matches(row.get("from"), row.get("sender profile url"))


def read_linkedin_export(
    inputs: str | Path | IO[bytes] | Iterable[str | Path | IO[bytes]], me: str | None = None, report: ReadReport | None = None
) -> Iterator[Record]:
    """Records of inbound messages and invitations from a LinkedIn export (folder, zip or its CSV files).

    The owner's own messages, drafts, outgoing invitations and AI-coach files are yielded
    as skipped records. `me` (a name or a profile URL) overrides the inferred owner.
    """
    if isinstance(inputs, (str, Path)) or hasattr(inputs, "read"):
        inputs = [inputs]  # type: ignore[list-item]
    return _Export(inputs, me, report if report is not None else ReadReport()).records()  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------


class Inbox:
    """Records from one or more inputs, in order; `report` fills in while iterating."""

    def __init__(self, parts: list[tuple[str, Callable[[], Iterator[Record]]]], extra_columns: list[str], report: ReadReport):
        self._parts = parts
        self.extra_columns = extra_columns
        self.report = report
        self.formats = [fmt for fmt, _ in parts]

    @property
    def id_columns(self) -> tuple[str, ...]:
        wanted: set[str] = set()
        for fmt in self.formats:
            wanted.update(LINKEDIN_ID_COLUMNS if fmt == "linkedin" else PLAIN_ID_COLUMNS)
        return tuple(c for c in ID_COLUMNS if c in wanted)

    def __iter__(self) -> Iterator[Record]:
        for _, make in self._parts:
            yield from make()


def read_items(
    inputs: str | Path | IO[bytes] | Iterable[str | Path | IO[bytes]],
    format: str = "auto",
    me: str | None = None,
    report: ReadReport | None = None,
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
    parts: list[tuple[str, Callable[[], Iterator[Record]]]] = []
    extra: list[str] = []
    linkedin: list[Any] = []
    for value in inputs:  # type: ignore[union-attr]
        is_dir = isinstance(value, (str, Path)) and Path(value).is_dir()
        source = value if is_dir else _as_source(value)
        fmt = format if format != "auto" else detect_format(value if is_dir else source)  # type: ignore[arg-type]
        if is_dir and fmt != "linkedin":
            raise ValueError(f"{value} is a folder: only a LinkedIn export can be a folder")
        if fmt == "linkedin":
            if not linkedin:
                parts.append(("linkedin", lambda: read_linkedin_export(linkedin, me=me, report=report)))
            linkedin.append(source)
        elif fmt == "jsonl":
            parts.append(("jsonl", partial(read_jsonl, source, report)))
        else:
            _, carried = plain_csv_header(source, report)  # type: ignore[arg-type]
            extra += [c for c in carried if c not in extra]
            parts.append(("csv", partial(read_plain_csv, source, report)))
    if not parts:
        raise ValueError("no input given")
    return Inbox(parts, extra, report)
