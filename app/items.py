"""Turning a received item with its thread context into an `Item` for the model.

Shared by the service (request bodies), batch scoring (CSV, JSONL, LinkedIn exports)
and retraining, so thread signals are derived the same way everywhere:

- `prior_unanswered`: inbound messages from this sender since the recipient last wrote,
- `minutes_since_connected`: from the connection time to this item's time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.features import Item


@dataclass(frozen=True)
class ThreadMessage:
    """An earlier message of the same conversation; inbound = from this sender to the recipient."""

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


def unanswered_count(thread: Iterable[ThreadMessage]) -> int:
    """Inbound messages after the recipient's last outbound message (oldest-first thread)."""
    count = 0
    for message in thread:
        if message.direction == "outbound":
            count = 0
        elif message.direction == "inbound":
            count += 1
        else:
            raise ValueError(f"thread direction must be 'inbound' or 'outbound', got {message.direction!r}")
    return count


def minutes_between(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None or end < start:
        return None
    return int((end - start).total_seconds() // 60)


def build_item(
    text: str,
    kind: str = "message",
    sender: Mapping[str, Any] | None = None,
    recipient_name: str | None = None,
    sent_at: datetime | None = None,
    connected_at: datetime | None = None,
    thread: Iterable[ThreadMessage] = (),
    prior_unanswered: int | None = None,
    minutes_since_connected: int | None = None,
) -> Item:
    """An Item from a received note or message, its sender's profile and its thread.

    Explicit `prior_unanswered` / `minutes_since_connected` win over what the thread and
    the timestamps imply.
    """
    thread = list(thread)
    sender = dict(sender or {})
    if prior_unanswered is None and thread:
        prior_unanswered = unanswered_count(thread)
    if minutes_since_connected is None and connected_at is not None:
        minutes_since_connected = minutes_between(connected_at, sent_at)
    return Item.from_mapping(
        {
            "text": text,
            "kind": kind,
            "sender_name": sender.get("name"),
            "sender_headline": sender.get("headline"),
            "sender_connections": sender.get("connections"),
            "mutual_connections": sender.get("mutual_connections"),
            "sender_has_photo": sender.get("has_photo"),
            "sender_account_age_days": sender.get("account_age_days"),
            "recipient_name": recipient_name,
            "minutes_since_connected": minutes_since_connected,
            "prior_unanswered": prior_unanswered,
        }
    )
