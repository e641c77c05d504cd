"""Reading LinkedIn's own data export: messages.csv, Invitations.csv, Connections.csv (folder, zip or files).

Only inbound items are scored: messages others wrote to the owner and incoming invitations
with a note. The owner's own messages, drafts, outgoing invitations, invitations without a
note and AI-coach files are yielded as skipped records with their reason. The owner is
inferred (or given with `me`), and every inbound message carries its conversation: what
the owner and this sender wrote before it, whether the owner replied after it, and how long
the two have been connected (`app/items.py` turns that into the item's context fields).
"""

from __future__ import annotations

import contextlib
import html
import re
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from app.items import Item, ThreadMessage, build_item, parse_datetime
from app.owner import Owner, OwnerEvidence, is_url, name_key, normalise_url
from app.sources import (
    COACH_FILE,
    DRAFT,
    EMPTY_MESSAGE,
    NO_NOTE,
    OUTGOING_INVITATION,
    OWN_MESSAGE,
    LimitExceeded,
    Limits,
    ReadReport,
    Record,
    Source,
    as_source,
    csv_records,
    head,
    norm_header,
    path_source,
    sample_rows,
    zip_member_source,
)

NO_CONVERSATIONS = "no conversations found"
_COACH_WORDS = ("coach", "guide", "learning", "role_play", "roleplay")

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


def _classify_content(source: Source) -> str | None:
    for row in sample_rows(source):
        cells = set(row)
        if row and row[0].startswith(NO_CONVERSATIONS):
            return "messages"
        if {"from", "content"} <= cells:
            return "messages"
        if {"from", "to", "sent at", "direction"} <= cells:
            return "invitations"
        if {"first name", "connected on"} <= cells:
            return "connections"
    return None


def _table(
    source: Source, report: ReadReport | None, is_header: Callable[[list[str]], bool], limits: Limits
) -> Iterator[tuple[int, Any]]:
    """(line, {column: value}) rows after the first row that `is_header` accepts; (line, str) for broken rows."""
    header: list[str] | None = None
    for line, row, problem in csv_records(source, report, limits):
        if row is None:
            if header is not None:
                yield line, problem
            continue
        if header is None:
            low = norm_header(row)
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


def is_connections_header(h: list[str]) -> bool:
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
        keys = {normalise_url(url), "name:" + name_key(name)} - {"", "name:"}
        return bool(keys & self.connections)

    def add_connection(self, name: str, url: str, day: datetime) -> None:
        self.connections.update({normalise_url(url), "name:" + name_key(name)} - {"", "name:"})
        if key := normalise_url(url):
            self.by_url[key] = day
        if key := name_key(name):
            self.by_name[key] = day if self.by_name.get(key, day) == day else None

    def add_invitation(self, name: str, url: str, when: datetime) -> None:
        """An invitation's exact time wins over a Connections date of the same day, or stands alone."""
        for table, key in ((self.by_url, normalise_url(url)), (self.by_name, name_key(name))):
            if not key:
                continue
            if key not in table:
                table[key] = when
            elif (old := table[key]) is not None and old.date() == when.date():
                table[key] = when

    def connected_at(self, name: str, url: str) -> datetime | None:
        if url and (hit := self.by_url.get(normalise_url(url))):
            return hit
        return self.by_name.get(name_key(name))


def _message_text(value: str | None) -> str:
    return value or ""


def _decoded(value: str | None) -> str | None:
    return " ".join(html.unescape(value).split()) if value and value.strip() else None


class _Export:
    """A LinkedIn export spread over folders, zips and single files."""

    def __init__(
        self, inputs: Iterable[str | Path | IO[bytes] | Source], me: str | None, report: ReadReport, limits: Limits
    ) -> None:
        self.inputs = list(inputs)
        self.me = me
        self.report = report
        self.limits = limits

    def _members(self, stack: contextlib.ExitStack) -> list[tuple[str, Source]]:
        found: list[tuple[str, Source]] = []
        for value in self.inputs:
            if isinstance(value, (str, Path)) and Path(value).is_dir():
                root = Path(value)
                for path in sorted(p for p in root.rglob("*") if p.is_file()):
                    kind = _classify_name(path.name)
                    if kind:
                        found.append((kind, path_source(path)))
                continue
            src = as_source(value)
            if head(src, 4) == b"PK\x03\x04":
                fh = stack.enter_context(src.open())
                archive = stack.enter_context(zipfile.ZipFile(fh))
                zip_name = Path(src.name).name
                for info in sorted(archive.infolist(), key=lambda i: i.filename):
                    if info.is_dir() or "__MACOSX" in info.filename:
                        continue
                    kind = _classify_name(info.filename)
                    if kind:
                        found.append((kind, zip_member_source(archive, info, zip_name, self.limits, self.report)))
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
            evidence = OwnerEvidence()
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
    def _read_connections(self, src: Source, people: _People) -> None:
        people.has_connections = True
        for _, row in _table(src, self.report, is_connections_header, self.limits):
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

    def _scan_invitations(self, src: Source, people: _People, owner: Counter[tuple[str, str]]) -> None:
        for _, row in _table(src, self.report, _is_invitations_header, self.limits):
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
            if name_key(me_name):
                owner[("name", me_name.strip())] += 1
            if me_url:
                owner[("url", normalise_url(me_url))] += 1
            with contextlib.suppress(ValueError):
                when = parse_export_time(row.get("sent at"), "Sent At")
                if when is not None:
                    people.add_invitation(other_name, other_url, when)

    def _scan_messages(self, src: Source, evidence: OwnerEvidence) -> None:
        previous = None
        for _, row in _table(src, self.report, _is_messages_header, self.limits):
            if isinstance(row, str):
                continue
            key = _conversation_key(row)
            if previous is not None and key != previous:
                evidence.end_conversation()
            previous = key
            evidence.add_row(row)
        evidence.end_conversation()

    def _owner(self, evidence: OwnerEvidence, invite_owner: Counter[tuple[str, str]]) -> Owner | None:
        owner: Owner | None
        if self.me:
            owner = Owner.from_me(self.me)
        elif invite_owner:
            names = [v for (k, v), _ in invite_owner.most_common() if k == "name"]
            urls = {v for (k, v) in invite_owner if k == "url"}
            top = names[0] if names else next(iter(urls))
            owner = Owner({name_key(top)} if names else set(), urls, top, "inferred from Invitations.csv")
        else:
            owner = evidence.owner()
        if owner is None:
            self.report.notes.append("the account owner could not be inferred: every message counts as received (pass --me)")
            return None
        evidence.aliases_for(owner)
        self.report.owner, self.report.owner_how = owner.display, owner.how
        return owner

    # -- scored files -----------------------------------------------------------------
    def _read_messages(self, src: Source, owner: Owner | None, people: _People) -> Iterator[Record]:
        block: list[tuple[int, dict[str, str]]] = []
        previous = None
        for line, row in _table(src, self.report, _is_messages_header, self.limits):
            if isinstance(row, str):
                yield Record(src.name, line, {"file": src.name, "line": line, "kind": "message"}, error=row)
                continue
            key = _conversation_key(row)
            if block and key != previous:
                yield from self._conversation(src.name, block, owner, people)
                block = []
            previous = key
            block.append((line, row))
            if len(block) > self.limits.conversation_rows:
                where = f"{src.name}: the conversation ending on line {line}"
                raise LimitExceeded(where, "TRIAGE_MAX_CONVERSATION_ROWS", self.limits.conversation_rows)
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
            sender = "" if own else (normalise_url(row.get("sender profile url")) or "name:" + name_key(row.get("from")))
            record = out[line]
            if not own and record.skipped is None:
                thread = [m for key, m in history if key in ("", sender)]
                try:
                    replied = position < last_own if owner is not None else None
                    record.item = self._message_item(row, owner, people, when, thread, owner_replied_after=replied)
                    record.ids["owner_replied_after"] = replied
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
        recipient = owner.display if owner and owner.names and not is_url(owner.display) else _decoded(row.get("to"))
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
            owner_replied_after=owner_replied_after,
        )

    def _read_invitations(self, src: Source) -> Iterator[Record]:
        for line, row in _table(src, self.report, _is_invitations_header, self.limits):
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

    def _read_coach(self, src: Source) -> Iterator[Record]:
        for line, row in _table(src, self.report, _is_messages_header, self.limits):
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
    pair = sorted({name_key(row.get("from")), name_key(row.get("to"))})
    return ("people", name_key(row.get("conversation title")), *pair)


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
    inputs: str | Path | IO[bytes] | Source | Iterable[str | Path | IO[bytes] | Source],
    me: str | None = None,
    report: ReadReport | None = None,
    limits: Limits | None = None,
) -> Iterator[Record]:
    """Records of inbound messages and invitations from a LinkedIn export (folder, zip or its CSV files).

    The owner's own messages, drafts, outgoing invitations and AI-coach files are yielded
    as skipped records. `me` (a name or a profile URL) overrides the inferred owner.
    """
    if isinstance(inputs, (str, Path)) or hasattr(inputs, "read"):
        inputs = [inputs]  # type: ignore[list-item]
    if isinstance(inputs, Source):
        inputs = [inputs]
    return _Export(inputs, me, report if report is not None else ReadReport(), limits or Limits()).records()  # type: ignore[arg-type]
