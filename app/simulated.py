"""Simulated LinkedIn inboxes: the authored source format, its checks, and rendering to an export.

Each simulated inbox is written by hand as one JSON file (`data/inboxes/src/<hand>/<inbox>.json`,
format in `data/inboxes/FORMAT.md`): the owner's persona, the people who write to them, their
conversations in both directions with dates, and their invitations, every inbound item labelled.
`render_export` turns it into LinkedIn's own export layout (`messages.csv`, `Invitations.csv`,
`Connections.csv`) plus `labels.csv`, so training reads simulated inboxes through the same
readers (`app/inbox.py`) as users' exports. Rendering is deterministic: the same source gives
the same bytes.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from app.items import LABELS

ME = "me"
LABEL_COLUMNS = ("file", "line", "kind", "label", "role", "sender", "sent_at", "text_sha1")
_TIME = "%Y-%m-%d %H:%M"
_DATE = "%Y-%m-%d"
_ANONYMOUS = "LinkedIn Member"


class SourceError(ValueError):
    """A simulated inbox source that breaks the format; the message names the file and the place."""


@dataclass(frozen=True)
class Person:
    key: str
    name: str
    role: str
    headline: str = ""
    connected: datetime | None = None
    profile: bool = True


@dataclass(frozen=True)
class Message:
    at: datetime
    sender: str  # a person key or "me"
    text: str
    label: str | None


@dataclass(frozen=True)
class Conversation:
    with_: tuple[str, ...]
    messages: tuple[Message, ...]
    subject: str = ""
    title: str = ""
    folder: str = "INBOX"
    lang: str = ""


@dataclass(frozen=True)
class Invitation:
    at: datetime
    incoming: bool
    person: str  # a person key
    note: str
    label: str | None


@dataclass
class InboxSource:
    inbox: str
    hand: str
    export_date: datetime
    owner: dict[str, Any]
    people: dict[str, Person]
    conversations: list[Conversation]
    invitations: list[Invitation]
    path: str = ""
    extra_people: list[Person] = field(default_factory=list)

    @property
    def owner_name(self) -> str:
        return str(self.owner["name"])


# --------------------------------------------------------------------------------------
# Loading and checking
# --------------------------------------------------------------------------------------


def _time(value: Any, where: str, fmt: str = _TIME) -> datetime:
    if not isinstance(value, str):
        raise SourceError(f"{where}: expected a date string, got {value!r}")
    for f in (fmt, _TIME, _DATE):
        try:
            return datetime.strptime(value.strip(), f)
        except ValueError:
            continue
    raise SourceError(f"{where}: cannot read the date {value!r} (expected YYYY-MM-DD HH:MM)")


def _label(value: Any, where: str) -> str:
    if value not in LABELS:
        raise SourceError(f"{where}: label must be one of {', '.join(LABELS)}, got {value!r}")
    return str(value)


def _text(value: Any, where: str, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise SourceError(f"{where}: expected a string, got {type(value).__name__}")
    stripped = value.strip()
    if not allow_empty and not stripped:
        raise SourceError(f"{where}: empty text")
    if stripped and value != stripped:
        # an export's reader strips a cell, so the labels file would no longer match the text read back
        raise SourceError(f"{where}: starts or ends with white space; trim it")
    return value


def _objects(value: Any, where: str) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """The entries of a list of objects, each with its index and its place for error messages."""
    if not isinstance(value, list):
        raise SourceError(f"{where}: expected a list")
    for n, raw in enumerate(value):
        if not isinstance(raw, dict):
            raise SourceError(f"{where}[{n}]: expected an object")
        yield n, f"{where}[{n}]", raw


def parse_source(obj: Any, path: str = "<source>") -> InboxSource:
    """Check an authored inbox (the parsed JSON) and return it; SourceError names the first problem."""
    if not isinstance(obj, dict):
        raise SourceError(f"{path}: expected a JSON object at the top")
    for key in ("inbox", "hand", "export_date", "owner", "people", "conversations", "invitations"):
        if key not in obj:
            raise SourceError(f"{path}: missing top-level key {key!r}")
    owner = obj["owner"]
    if not isinstance(owner, dict) or not str(owner.get("name", "")).strip():
        raise SourceError(f"{path}: owner: expected an object with a name")
    for key in ("country", "profession", "languages"):
        if key not in owner:
            raise SourceError(f"{path}: owner: missing {key!r}")
    export_date = _time(obj["export_date"], f"{path}: export_date", _DATE)
    people: dict[str, Person] = {}
    if not isinstance(obj["people"], dict):
        raise SourceError(f"{path}: people: expected an object of key -> person")
    for key, raw in obj["people"].items():
        where = f"{path}: people.{key}"
        if key == ME:
            raise SourceError(f"{where}: 'me' is reserved for the owner")
        if not isinstance(raw, dict):
            raise SourceError(f"{where}: expected an object")
        name = _text(raw.get("name"), f"{where}.name")
        role = _text(raw.get("role", ""), f"{where}.role")
        connected = raw.get("connected")
        people[key] = Person(
            key=key,
            name=name.strip(),
            role=role.strip(),
            headline=str(raw.get("headline") or ""),
            connected=_time(connected, f"{where}.connected", _DATE) if connected else None,
            profile=bool(raw.get("profile", True)) and name.strip() != _ANONYMOUS,
        )
    conversations: list[Conversation] = []
    for _, where, raw in _objects(obj["conversations"], f"{path}: conversations"):
        with_ = raw.get("with")
        if isinstance(with_, str):
            with_ = [with_]
        if not isinstance(with_, list) or not with_:
            raise SourceError(f"{where}.with: expected a list of person keys")
        for key in with_:
            if key not in people:
                raise SourceError(f"{where}.with: {key!r} is not in people")
        messages = []
        raw_messages = raw.get("messages")
        if not isinstance(raw_messages, list) or not raw_messages:
            raise SourceError(f"{where}.messages: expected a non-empty list")
        for _, mwhere, msg in _objects(raw_messages, f"{where}.messages"):
            sender = msg.get("from")
            if sender != ME and sender not in with_:
                raise SourceError(f"{mwhere}.from: {sender!r} is neither 'me' nor one of this conversation's people")
            at = _time(msg.get("at"), f"{mwhere}.at")
            if at.date() > export_date.date():
                raise SourceError(f"{mwhere}.at: {msg.get('at')} is after the export date")
            text = _text(msg.get("text"), f"{mwhere}.text")
            label = None if sender == ME else _label(msg.get("label"), f"{mwhere}.label")
            if sender == ME and msg.get("label") is not None:
                raise SourceError(f"{mwhere}: the owner's own messages carry no label")
            messages.append(Message(at, str(sender), text, label))
        times = [m.at for m in messages]
        if times != sorted(times):
            raise SourceError(f"{where}.messages: not in time order (oldest first)")
        folder = str(raw.get("folder") or "INBOX").upper()
        if folder not in ("INBOX", "ARCHIVE", "SPAM"):
            raise SourceError(f"{where}.folder: expected INBOX, ARCHIVE or SPAM, got {folder!r}")
        conversations.append(
            Conversation(
                tuple(with_),
                tuple(messages),
                str(raw.get("subject") or ""),
                str(raw.get("title") or ""),
                folder,
                str(raw.get("lang") or ""),
            )
        )
    invitations: list[Invitation] = []
    extra: list[Person] = []
    for n, where, raw in _objects(obj["invitations"], f"{path}: invitations"):
        direction = str(raw.get("dir", "in")).lower()
        if direction not in ("in", "out"):
            raise SourceError(f"{where}.dir: expected 'in' or 'out', got {direction!r}")
        if "person" in raw:
            key = raw["person"]
            if key not in people:
                raise SourceError(f"{where}.person: {key!r} is not in people")
        else:
            name = _text(raw.get("name"), f"{where}.name")
            key = f"_inv{n}"
            person = Person(key, name.strip(), str(raw.get("role") or "").strip(), str(raw.get("headline") or ""))
            people[key] = person
            extra.append(person)
        at = _time(raw.get("at"), f"{where}.at")
        if at.date() > export_date.date():
            raise SourceError(f"{where}.at: {raw.get('at')} is after the export date")
        note = _text(raw.get("note", ""), f"{where}.note", allow_empty=True)
        incoming = direction == "in"
        label = _label(raw.get("label"), f"{where}.label") if incoming else None
        invitations.append(Invitation(at, incoming, key, note, label))
    return InboxSource(
        inbox=str(obj["inbox"]),
        hand=str(obj["hand"]),
        export_date=export_date,
        owner=owner,
        people=people,
        conversations=conversations,
        invitations=invitations,
        path=path,
        extra_people=extra,
    )


def load_source(path: str | Path) -> InboxSource:
    """Read and check one authored inbox file."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SourceError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    return parse_source(obj, str(path))


# --------------------------------------------------------------------------------------
# Rendering to LinkedIn's export layout
# --------------------------------------------------------------------------------------


def _slug(name: str, seed: str) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "member"
    return f"{base[:30]}-{hashlib.sha1(seed.encode()).hexdigest()[:8]}"


def _profile_url(name: str, seed: str) -> str:
    return f"https://www.linkedin.com/in/{_slug(name, seed)}"


def _conversation_id(seed: str) -> str:
    digest = hashlib.sha256(seed.encode()).digest() + hashlib.sha256(seed[::-1].encode()).digest()[:7]
    return "2-" + base64.b64encode(digest[:40]).decode()


def _layout(export_date: datetime) -> tuple[list[str], bool]:
    """The messages.csv header of an export made on that date, and whether every field is quoted."""
    base = ["CONVERSATION ID", "CONVERSATION TITLE", "FROM", "SENDER PROFILE URL", "TO"]
    tail = ["DATE", "SUBJECT", "CONTENT", "FOLDER"]
    if export_date < datetime(2023, 1, 1):
        return base + tail, False
    with_urls = [*base, "RECIPIENT PROFILE URLS", *tail]
    if export_date < datetime(2024, 9, 1):
        return with_urls, False
    if export_date < datetime(2025, 1, 1):
        return [*with_urls, "IS MESSAGE DRAFT", "IS CONVERSATION DRAFT"], False
    return [*with_urls, "ATTACHMENTS"], export_date >= datetime(2026, 1, 1)


class _LineCountingWriter:
    """A csv writer that knows the physical line each record starts on."""

    def __init__(self, quote_all: bool, crlf: bool = False):
        self.buffer = io.StringIO()
        self.line = 1
        terminator = "\r\n" if crlf else "\n"
        self._writer = csv.writer(
            self.buffer, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL, lineterminator=terminator
        )

    def raw(self, text: str) -> None:
        self.buffer.write(text)
        self.line += text.count("\n")

    def row(self, cells: Iterable[str]) -> int:
        start = self.line
        before = self.buffer.tell()
        self._writer.writerow(list(cells))
        self.line += self.buffer.getvalue()[before:].count("\n")
        return start


def _flatten(text: str, keep_line_feeds: bool) -> str:
    """Exports before 2026 carry no line breaks in CONTENT."""
    if keep_line_feeds:
        return text
    return re.sub(r"\s*\n\s*", " ", text).strip()


def text_sha1(text: str) -> str:
    """The short hash a labels file uses to check that a line still holds the labelled text."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def render_export(source: InboxSource) -> dict[str, str]:
    """File name -> content of the rendered export (messages.csv, Invitations.csv, Connections.csv, labels.csv)."""
    rng = random.Random(f"{source.inbox}:{source.export_date:%Y%m%d}")
    owner = source.owner_name
    owner_url = _profile_url(owner, f"{source.inbox}:owner")
    urls = {key: (_profile_url(p.name, f"{source.inbox}:{key}") if p.profile else "") for key, p in source.people.items()}
    header, quote_all = _layout(source.export_date)
    labels: list[dict[str, Any]] = []

    # messages.csv: conversations newest first, rows newest first inside each
    out = _LineCountingWriter(quote_all)
    out.row(header)
    order = sorted(
        range(len(source.conversations)),
        key=lambda i: (source.conversations[i].messages[-1].at, i),
        reverse=True,
    )
    for index in order:
        conv = source.conversations[index]
        cid = _conversation_id(f"{source.inbox}:{index}")
        anonymous = all(not source.people[k].profile for k in conv.with_)
        title = conv.title or ("Sponsored Conversation" if anonymous and conv.folder == "ARCHIVE" else "")
        if not title and len(conv.with_) > 1:
            title = ", ".join(source.people[k].name for k in conv.with_)
        for msg in reversed(conv.messages):
            if msg.sender == ME:
                sender_name, sender_url = owner, owner_url
                recipients = [source.people[k] for k in conv.with_]
                to_names = [p.name for p in recipients]
                to_urls = [urls[p.key] for p in recipients if urls[p.key]]
            else:
                person = source.people[msg.sender]
                sender_name, sender_url = person.name, urls[msg.sender]
                others = [source.people[k] for k in conv.with_ if k != msg.sender]
                to_names = [owner] + [p.name for p in others]
                to_urls = [owner_url] + [urls[p.key] for p in others if urls[p.key]]
            content = _flatten(msg.text, quote_all)
            cells = {
                "CONVERSATION ID": cid,
                "CONVERSATION TITLE": title,
                "FROM": sender_name,
                "SENDER PROFILE URL": sender_url,
                "TO": ", ".join(to_names),
                "RECIPIENT PROFILE URLS": ",".join(to_urls),
                "DATE": msg.at.strftime("%Y-%m-%d %H:%M:") + f"{rng.randrange(60):02d} UTC",
                "SUBJECT": conv.subject if msg is conv.messages[0] else "",
                "CONTENT": content,
                "FOLDER": conv.folder,
                "IS MESSAGE DRAFT": "No",
                "IS CONVERSATION DRAFT": "No",
                "ATTACHMENTS": "",
            }
            line = out.row(cells[c] for c in header)
            if msg.sender != ME:
                person = source.people[msg.sender]
                labels.append(
                    {
                        "file": "messages.csv",
                        "line": line,
                        "kind": "message",
                        "label": msg.label,
                        "role": person.role,
                        "sender": person.name,
                        "sent_at": msg.at.strftime(_TIME),
                        "text_sha1": text_sha1(content),
                    }
                )
    files = {"messages.csv": out.buffer.getvalue()}

    # Invitations.csv: newest first; five columns before late 2023
    wide = source.export_date >= datetime(2023, 10, 1)
    crlf = rng.random() < 0.3
    inv = _LineCountingWriter(quote_all=False, crlf=crlf)
    inv_header = ["From", "To", "Sent At", "Message", "Direction"] + (["inviterProfileUrl", "inviteeProfileUrl"] if wide else [])
    inv.row(inv_header)
    for invitation in sorted(source.invitations, key=lambda i: i.at, reverse=True):
        person = source.people[invitation.person]
        purl = urls[invitation.person] or _profile_url(person.name, f"{source.inbox}:{invitation.person}")
        if invitation.incoming:
            row = [person.name, owner, _invite_time(invitation.at), invitation.note, "INCOMING", purl, owner_url]
        else:
            row = [owner, person.name, _invite_time(invitation.at), invitation.note, "OUTGOING", owner_url, purl]
        line = inv.row(row[: len(inv_header)])
        if invitation.incoming:
            labels.append(
                {
                    "file": "Invitations.csv",
                    "line": line,
                    "kind": "invite",
                    "label": invitation.label,
                    "role": person.role,
                    "sender": person.name,
                    "sent_at": invitation.at.strftime(_TIME),
                    "text_sha1": text_sha1(invitation.note),
                }
            )
    files["Invitations.csv"] = inv.buffer.getvalue()

    # Connections.csv: the people with a connection date, a few hidden profiles, the preamble since 2022
    con = _LineCountingWriter(quote_all=False)
    if source.export_date >= datetime(2022, 1, 1):
        con.raw(
            'Notes:\n"Some e-mail addresses may be missing from this file: a member shares one with their '
            'connections only when they allow it in their settings."\n\n'
        )
    con_header = ["First Name", "Last Name", "URL", "Email Address", "Company", "Position", "Connected On"]
    if source.export_date < datetime(2023, 1, 1):
        con_header.remove("URL")
    con.row(con_header)
    connected = sorted((p for p in source.people.values() if p.connected), key=lambda p: p.connected, reverse=True)  # type: ignore[arg-type, return-value]
    for person in connected:
        first, _, last = person.name.partition(" ")
        company, position = _company_position(person.headline)
        assert person.connected is not None
        cells = {
            "First Name": first,
            "Last Name": last,
            "URL": urls[person.key],
            "Email Address": "",
            "Company": company,
            "Position": position,
            "Connected On": person.connected.strftime("%d %b %Y"),
        }
        con.row(cells[c] for c in con_header)
        if rng.random() < 0.05:
            con.row([""] * (len(con_header) - 1) + [person.connected.strftime("%d %b %Y")])
    files["Connections.csv"] = con.buffer.getvalue().rstrip("\n")

    lab = io.StringIO()
    writer = csv.DictWriter(lab, fieldnames=LABEL_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(labels)
    files["labels.csv"] = lab.getvalue()
    return files


def _invite_time(at: datetime) -> str:
    hour = at.hour % 12 or 12
    return f"{at.month}/{at.day}/{at.strftime('%y')}, {hour}:{at.minute:02d} {'AM' if at.hour < 12 else 'PM'}"


def _company_position(headline: str) -> tuple[str, str]:
    for sep in (" at ", " @ ", " | "):
        if sep in headline:
            position, _, company = headline.partition(sep)
            return company.strip(), position.strip()
    return "", headline.strip()


def write_export(source: InboxSource, folder: Path) -> None:
    """Render `source` into `folder` (created), one file per export file plus labels.csv."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in render_export(source).items():
        (folder / name).write_text(content, encoding="utf-8", newline="")


def iter_sources(paths: Iterable[str | Path]) -> Iterator[Path]:
    """The .json inbox sources under the given files or folders, sorted."""
    for value in paths:
        path = Path(value)
        if path.is_dir():
            yield from sorted(path.rglob("*.json"))
        else:
            yield path
