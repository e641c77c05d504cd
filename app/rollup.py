"""One verdict per conversation (or per sender, where there is no conversation id).

The rollup averages the class probabilities of the inbound items of a conversation and
applies the model's own abstain rule to the average, so a thread of pitches is a pitch even
when one turn alone ("any thoughts?") would not say so. A conversation is *awaiting a reply*
when its last inbound message came after the owner's last one. `triage score --by
conversation`, the web page and the HTML report use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.model import LABELS, Thresholds, decide
from app.output import VERDICT_COLUMNS

ROLLUP_COLUMNS = (
    "conversation",
    "sender_name",
    "messages",
    "first_sent_at",
    "last_sent_at",
    *VERDICT_COLUMNS,
    "awaiting_reply",
    "summary",
)


@dataclass
class Conversation:
    key: str
    sender_name: str
    rows: list[Mapping[str, Any]] = field(default_factory=list)
    verdict: str = ""
    confidence: float = 0.0
    scores: dict[str, float] = field(default_factory=dict)
    needs_review: bool = False
    awaiting_reply: bool = False

    @property
    def first_sent_at(self) -> str:
        return min((str(r.get("sent_at") or "") for r in self.rows), default="")

    @property
    def last_sent_at(self) -> str:
        return max((str(r.get("sent_at") or "") for r in self.rows), default="")

    def cells(self) -> list[Any]:
        return [
            self.key,
            self.sender_name,
            len(self.rows),
            self.first_sent_at,
            self.last_sent_at,
            self.verdict,
            round(self.confidence, 4),
            *(round(self.scores[lab], 4) for lab in LABELS),
            self.needs_review,
            self.awaiting_reply,
            self.summary(),
        ]

    def summary(self) -> str:
        counts = {lab: sum(r.get("verdict") == lab for r in self.rows) for lab in LABELS}
        parts = ", ".join(f"{n} {lab.replace('_', ' ')}" for lab, n in counts.items() if n)
        tail = "; waiting for your reply" if self.awaiting_reply else ""
        return f"{len(self.rows)} inbound item{'s' if len(self.rows) != 1 else ''} ({parts}){tail}"


def conversation_key(row: Mapping[str, Any]) -> str:
    """The conversation id, else the sender's profile URL, else the sender's name, else the row itself."""
    for key in ("conversation_id", "sender_profile_url", "sender_name"):
        value = row.get(key)
        if value:
            return str(value)
    return f"{row.get('file', '')}:{row.get('line', '')}"


def roll_up(rows: Iterable[Mapping[str, Any]], thresholds: Thresholds) -> list[Conversation]:
    """Conversations from scored rows (score columns plus ids; `owner_replied_after` when known), newest first."""
    groups: dict[str, Conversation] = {}
    for row in rows:
        key = conversation_key(row)
        conv = groups.get(key)
        if conv is None:
            conv = groups[key] = Conversation(key, str(row.get("sender_name") or ""))
        conv.rows.append(row)
    if not groups:
        return []
    convs = list(groups.values())
    mean = np.array([[np.mean([float(r[f"p_{lab}"]) for r in c.rows]) for lab in LABELS] for c in convs])
    verdicts, review = decide(mean, thresholds)
    for c, k, p, rev in zip(convs, verdicts, mean, review, strict=True):
        c.verdict, c.confidence = LABELS[int(k)], float(p[int(k)])
        c.scores = {lab: float(v) for lab, v in zip(LABELS, p, strict=True)}
        c.needs_review = bool(rev) or any(_true(r.get("needs_review")) for r in c.rows)
        last = max(c.rows, key=lambda r: str(r.get("sent_at") or ""))
        c.awaiting_reply = last.get("owner_replied_after") in (False, "false")
    return sorted(convs, key=lambda c: c.last_sent_at, reverse=True)


def _true(value: Any) -> bool:
    return value is True or str(value).strip().lower() == "true"
