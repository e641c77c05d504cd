"""A received item (invite or message) with what is known of its sender and its conversation.

Shared by every way in (API bodies, plain CSV, JSONL, LinkedIn exports, training), so
the conversation context is derived the same way everywhere. Every field but `text`
may be unknown (None): a text pasted alone is a valid item.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from functools import cache
from typing import Any

KINDS = ("invite", "message")
MAX_COUNT = 1_000_000_000  # the largest count or age a field may hold (the API's limit too)
EARLIER_MESSAGES = 3  # the sender's earlier messages kept as thread text


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def as_int(value: Any, field_name: str) -> int | None:
    """A non-negative whole number or None; ValueError naming the field otherwise."""
    if _missing(value):
        return None
    if isinstance(value, bool):
        raise ValueError(f"{field_name}: expected a whole number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{field_name}: expected a whole number, got {value!r}") from None
    if not math.isfinite(number) or number < 0 or number != int(number):
        raise ValueError(f"{field_name}: expected a non-negative whole number, got {value!r}")
    if number > MAX_COUNT:
        raise ValueError(f"{field_name}: expected at most {MAX_COUNT:,}, got {value!r}")
    return int(number)


_TRUE = {"true", "yes", "y", "1", "t"}
_FALSE = {"false", "no", "n", "0", "f"}


def as_bool(value: Any, field_name: str) -> bool | None:
    """True, False or None; ValueError naming the field for anything else."""
    if _missing(value):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{field_name}: expected true or false, got {value!r}")


def _as_str(value: Any) -> str | None:
    return None if _missing(value) else str(value)


LABELS = ("genuine", "sales_pitch", "spam")  # the classes of LABELS.md, in the model's column order

ANONYMOUS_SENDERS = frozenset({"linkedin member", "linkedin"})


def is_anonymous(name: str | None) -> bool:
    """A sender LinkedIn hides: sponsored InMail and "LinkedIn Member" (an empty name is not one)."""
    return (name or "").strip().lower() in ANONYMOUS_SENDERS


@dataclass(frozen=True)
class Item:
    """One received invite or message, and what is known around it (None = unknown)."""

    text: str
    kind: str = "message"
    sender_name: str | None = None
    sender_headline: str | None = None
    sender_profile_url: str | None = None
    sender_company: str | None = None
    sender_connections: int | None = None
    mutual_connections: int | None = None
    sender_has_photo: bool | None = None
    sender_account_age_days: int | None = None
    recipient_name: str | None = None
    # the conversation, as far as it is known
    minutes_since_connected: int | None = None  # from the connection to this item
    is_connection: bool | None = None  # the sender was a connection when this arrived
    owner_messages_before: int | None = None  # the recipient's own messages earlier in the conversation
    sender_messages_before: int | None = None  # this sender's earlier messages in the conversation
    prior_unanswered: int | None = None  # this sender's messages since the recipient last wrote
    owner_started: bool | None = None  # the recipient wrote the conversation's first message
    owner_replied_after: bool | None = None  # the recipient wrote after this message (known in an export)
    earlier_text: str = ""  # this sender's last few earlier messages in the conversation

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> Item:
        """An item from a dict-like row (CSV, JSON, pandas); NaN and '' mean unknown.

        Raises ValueError naming the field when a value cannot be read.
        """
        text = row.get("text")
        text = "" if _missing(text) else str(text)
        kind = (_as_str(row.get("kind")) or "message").strip().lower()
        if kind not in KINDS:
            raise ValueError(f"kind: expected one of {list(KINDS)}, got {kind!r}")
        values: dict[str, Any] = {"text": text, "kind": kind}
        get = row.get
        for name, read in _readers():
            raw = get(name)
            if raw is not None and raw != "":  # absent fields keep their default, unknown
                values[name] = read(raw, name)
        return cls(**values)

    def text_only(self) -> Item:
        """The same text and kind with nothing else known (how a pasted text is scored)."""
        return Item(text=self.text, kind=self.kind)


@cache
def _readers() -> tuple[tuple[str, Callable[[Any, str], Any]], ...]:
    """How `Item.from_mapping` reads each field other than text and kind, by its declared type."""
    out: list[tuple[str, Callable[[Any, str], Any]]] = []
    for f in fields(Item):
        if f.name in ("text", "kind"):
            continue
        if f.type == "int | None":
            out.append((f.name, as_int))
        elif f.type == "bool | None":
            out.append((f.name, as_bool))
        elif f.name == "earlier_text":
            out.append((f.name, lambda raw, _: _as_str(raw) or ""))
        else:
            out.append((f.name, lambda raw, _: _as_str(raw)))
    return tuple(out)


ITEM_FIELDS = tuple(f.name for f in fields(Item))
CONTEXT_FIELDS = (
    "minutes_since_connected",
    "is_connection",
    "owner_messages_before",
    "sender_messages_before",
    "prior_unanswered",
    "owner_started",
    "owner_replied_after",
    "earlier_text",
)


@dataclass(frozen=True)
class ThreadMessage:
    """An earlier message of the same conversation: inbound (from this sender) or outbound (the recipient's)."""

    direction: str
    text: str = ""
    sent_at: datetime | None = None


def parse_datetime(value: Any, field: str) -> datetime | None:
    """An ISO 8601 time (naive means UTC), or None when empty. Raises ValueError naming the field."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        text = str(value).strip().replace(" UTC", "+00:00")
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{field}: expected an ISO 8601 date-time, got {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def minutes_between(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None or end < start:
        return None
    return int((end - start).total_seconds() // 60)


@dataclass(frozen=True)
class ThreadContext:
    """What the earlier messages of a conversation say about the next inbound one."""

    owner_messages_before: int
    sender_messages_before: int
    prior_unanswered: int
    owner_started: bool | None
    earlier_text: str

    @classmethod
    def of(cls, thread: Iterable[ThreadMessage]) -> ThreadContext:
        """From the earlier messages, oldest first; ValueError for a direction that is neither."""
        owner = sender = unanswered = 0
        first: str | None = None
        earlier: list[str] = []
        for message in thread:
            if message.direction not in ("inbound", "outbound"):
                raise ValueError(f"thread direction must be 'inbound' or 'outbound', got {message.direction!r}")
            first = first or message.direction
            if message.direction == "outbound":
                owner += 1
                unanswered = 0
            else:
                sender += 1
                unanswered += 1
                if message.text.strip():
                    earlier.append(message.text)
        return cls(
            owner_messages_before=owner,
            sender_messages_before=sender,
            prior_unanswered=unanswered,
            owner_started=first == "outbound",  # an empty thread: this message opens the conversation
            earlier_text="\n".join(earlier[-EARLIER_MESSAGES:]),
        )


_SENDER_FIELDS = {  # a sender object's keys and the Item fields they fill
    "name": "sender_name",
    "headline": "sender_headline",
    "profile_url": "sender_profile_url",
    "company": "sender_company",
    "connections": "sender_connections",
    "mutual_connections": "mutual_connections",
    "has_photo": "sender_has_photo",
    "account_age_days": "sender_account_age_days",
}


def build_item(
    text: str,
    kind: str = "message",
    sender: Mapping[str, Any] | None = None,
    recipient_name: str | None = None,
    sent_at: datetime | None = None,
    connected_at: datetime | None = None,
    thread: Iterable[ThreadMessage] | None = None,
    **known: Any,
) -> Item:
    """An Item from a received note or message, its sender's profile and its thread.

    A thread (even an empty one: a first message) fills the conversation fields; explicit
    values in `known` (e.g. `prior_unanswered`, `owner_replied_after`) win over it.
    """
    if not (text or "").strip():
        raise ValueError("text: empty; there is nothing to judge (an invitation without a note, or a blank message)")
    values: dict[str, Any] = {"text": text, "kind": kind, "recipient_name": recipient_name}
    for key, value in (sender or {}).items():
        if (name := _SENDER_FIELDS.get(key)) is not None:
            values[name] = value
    if thread is not None:
        context = ThreadContext.of(thread)
        values.update(
            owner_messages_before=context.owner_messages_before,
            sender_messages_before=context.sender_messages_before,
            prior_unanswered=context.prior_unanswered,
            owner_started=context.owner_started,
            earlier_text=context.earlier_text,
        )
    if connected_at is not None:
        values["minutes_since_connected"] = minutes_between(connected_at, sent_at)
        values["is_connection"] = sent_at is None or connected_at <= sent_at
    values.update({k: v for k, v in known.items() if not _missing(v)})
    return Item.from_mapping(values)


def with_context(item: Item, **context: Any) -> Item:
    """A copy of `item` with conversation fields replaced."""
    return replace(item, **context)
