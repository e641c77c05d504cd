"""The shape of an inbox, measured as FIELD_NOTES.md section 1 measures real LinkedIn exports.

Works on any export the readers take (a user's, or a rendered simulated inbox), so the
corpus can be printed beside the real figures with the same definitions.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.inbox import Record, read_linkedin_export
from app.sources import NO_NOTE, OWN_MESSAGE
from app.text import JOINED

# FIELD_NOTES.md section 1: 18 real exports, 15,290 inbound messages.
REAL = {
    "inbound messages in a conversation where the owner also wrote": 0.89,
    "inbound messages shorter than 40 characters": 0.56,
    "conversations with a single inbound message": 0.56,
    "inbound messages per conversation, median": 1,
    "inbound messages per conversation, 90th percentile": 7,
    "incoming invitations that carry a note": 0.029,
    "inbound messages with an e-mail address": 0.029,
    "inbound messages with a phone number": 0.036,
    "inbound messages with a link": 0.056,
    "inbound messages with raw HTML (Sponsored InMail)": 0.024,
    "inbound messages with unfilled merge tokens": 0.011,
    'sender shown as "LinkedIn Member" or blank': 0.051,
    "inbound messages that mention WhatsApp or Telegram": 0.005,
}
REAL_LENGTH_DECILES = (6, 12, 15, 23, 32, 45, 71, 133, 324)

_EMAIL = re.compile(r"[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63})+")
_PHONE = re.compile(rf"(?<!{JOINED}|/)\+?\d(?:[\s().-]{{0,2}}\d){{7,14}}(?!{JOINED})")
_LINK = re.compile(r"https?://|www\.|\b[a-z0-9-]{2,63}\.(?:com|net|org|io|ly|me|co|in|ng|app|link|gl)\b/?", re.IGNORECASE)
_HTML = re.compile(r"<\s*(?:p|br|a|strong|b|i|em|div|span|ul|li)\b[^>]{0,200}>", re.IGNORECASE)
_MERGE = re.compile(r"%[A-Z_]{3,20}%")
_CHAT_APPS = re.compile(r"whats\s?app|wa\.me|telegram|t\.me/", re.IGNORECASE)


@dataclass
class InboxShape:
    """Counts gathered over one or more exports."""

    inbound: list[str] = field(default_factory=list)
    in_owner_conversation: int = 0
    per_conversation: Counter[str] = field(default_factory=Counter)
    anonymous_senders: int = 0
    invitations: int = 0
    invitations_with_note: int = 0
    exports: int = 0

    def add_export(self, records: Iterable[Record], prefix: str) -> None:
        self.exports += 1
        owner_wrote: set[str] = set()
        messages: list[Record] = []
        for rec in records:
            conv = f"{prefix}:{rec.ids.get('conversation_id') or rec.ids.get('sender_name')}"
            if rec.ids.get("kind") == "invite":
                if rec.item is not None or rec.skipped == NO_NOTE:
                    self.invitations += 1
                    self.invitations_with_note += rec.item is not None
                continue
            if rec.skipped == OWN_MESSAGE:
                owner_wrote.add(conv)
            elif rec.item is not None:
                messages.append(rec)
        for rec in messages:
            conv = f"{prefix}:{rec.ids.get('conversation_id') or rec.ids.get('sender_name')}"
            assert rec.item is not None
            self.inbound.append(rec.item.text)
            self.per_conversation[conv] += 1
            self.in_owner_conversation += conv in owner_wrote
            name = (rec.ids.get("sender_name") or "").strip().lower()
            self.anonymous_senders += name in ("", "linkedin member")

    def table(self) -> dict[str, float]:
        n = max(len(self.inbound), 1)
        counts = np.array(list(self.per_conversation.values()) or [0])
        share = lambda rx: sum(bool(rx.search(t)) for t in self.inbound) / n
        return {
            "inbound messages in a conversation where the owner also wrote": self.in_owner_conversation / n,
            "inbound messages shorter than 40 characters": sum(len(t) < 40 for t in self.inbound) / n,
            "conversations with a single inbound message": float(np.mean(counts == 1)),
            "inbound messages per conversation, median": float(np.median(counts)),
            "inbound messages per conversation, 90th percentile": float(np.percentile(counts, 90)),
            "incoming invitations that carry a note": self.invitations_with_note / max(self.invitations, 1),
            "inbound messages with an e-mail address": share(_EMAIL),
            "inbound messages with a phone number": share(_PHONE),
            "inbound messages with a link": share(_LINK),
            "inbound messages with raw HTML (Sponsored InMail)": share(_HTML),
            "inbound messages with unfilled merge tokens": share(_MERGE),
            'sender shown as "LinkedIn Member" or blank': self.anonymous_senders / n,
            "inbound messages that mention WhatsApp or Telegram": share(_CHAT_APPS),
        }

    def length_deciles(self) -> list[int]:
        if not self.inbound:
            return []
        lengths = np.array([len(t) for t in self.inbound])
        return [round(float(v)) for v in np.percentile(lengths, np.arange(10, 100, 10))]


def measure_exports(folders: Iterable[str | Path]) -> InboxShape:
    """The shape of every export folder given, read through `read_linkedin_export`."""
    shape = InboxShape()
    for folder in folders:
        shape.add_export(read_linkedin_export(Path(folder)), str(folder))
    return shape


def format_comparison(shape: InboxShape) -> str:
    """A Markdown table: each FIELD_NOTES figure beside the measured one."""
    rows = ["| fact | real (FIELD_NOTES) | measured |", "| --- | ---: | ---: |"]
    measured = shape.table()
    for name, real in REAL.items():
        value = measured[name]
        if isinstance(real, float) and real < 1:
            rows.append(f"| {name} | {real:.1%} | {value:.1%} |")
        else:
            rows.append(f"| {name} | {real:g} | {value:g} |")
    rows.append(
        f"| length deciles (characters) | {', '.join(map(str, REAL_LENGTH_DECILES))} | "
        f"{', '.join(map(str, shape.length_deciles()))} |"
    )
    rows.append(f"| inbound messages / exports | 15,290 / 18 | {len(shape.inbound):,} / {shape.exports} |")
    return "\n".join(rows)
