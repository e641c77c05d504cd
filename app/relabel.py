"""Blind relabelling: sample labelled items with their conversation, and measure agreement.

`make_tasks` draws a stratified sample of the authored inbound items (every inbox
contributes the same share), shows each with what a second labeller would see in the
inbox (the sender's name and headline, the earlier turns of the conversation, never the
role or the label) and splits it into task files, one per relabelling hand. Each hand
answers with `{"id": ..., "label": ...}` lines; `agreement` compares the answers with the
authors' labels (Cohen's kappa, confusion, every disagreement for adjudication).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import cohen_kappa_score, confusion_matrix

from app.simulated import LABELS, ME, InboxSource

CONTEXT_TURNS = 6


@dataclass(frozen=True)
class LabelledItem:
    id: str  # <inbox>:c<conversation>:m<message> or <inbox>:i<invitation>
    inbox: str
    label: str
    task: dict[str, Any]  # what the relabeller sees


def labelled_items(source: InboxSource) -> list[LabelledItem]:
    """Every labelled inbound item of an inbox with text, with the view a second labeller gets."""
    owner = {k: source.owner.get(k) for k in ("headline", "country", "profession")}
    out = []
    for c, conv in enumerate(source.conversations):
        for m, msg in enumerate(conv.messages):
            if msg.label is None:
                continue
            person = source.people[msg.sender]
            before = conv.messages[max(0, m - CONTEXT_TURNS) : m]
            task = {
                "kind": "message",
                "owner": owner,
                "sender": {"name": person.name, "headline": person.headline, "connection": person.connected is not None},
                "subject": conv.subject or None,
                "earlier": [{"from": "owner" if e.sender == ME else "sender", "text": e.text} for e in before],
                "text": msg.text,
            }
            out.append(LabelledItem(f"{source.inbox}:c{c}:m{m}", source.inbox, msg.label, task))
    for i, inv in enumerate(source.invitations):
        if inv.incoming and inv.note.strip() and inv.label:
            person = source.people[inv.person]
            task = {
                "kind": "invite",
                "owner": owner,
                "sender": {"name": person.name, "headline": person.headline, "connection": False},
                "earlier": [],
                "text": inv.note,
            }
            out.append(LabelledItem(f"{source.inbox}:i{i}", source.inbox, inv.label, task))
    return out


def make_tasks(sources: Iterable[InboxSource], share: float, hands: Sequence[str], seed: int = 0) -> dict[str, list[dict]]:
    """A `share` of each inbox's items, shuffled, dealt to the hands; each task row is {"id", ...view}."""
    rng = random.Random(seed)
    sample: list[LabelledItem] = []
    for source in sources:
        items = labelled_items(source)
        k = max(1, round(share * len(items)))
        sample += rng.sample(items, min(k, len(items)))
    rng.shuffle(sample)
    tasks: dict[str, list[dict]] = {h: [] for h in hands}
    for n, item in enumerate(sample):
        tasks[hands[n % len(hands)]].append({"id": item.id, **item.task})
    return tasks


def read_answers(paths: Iterable[Path]) -> dict[str, str]:
    """id -> label from answer files (JSONL); ValueError naming the file and line of a bad answer."""
    answers: dict[str, str] = {}
    for path in paths:
        for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if row.get("label") not in LABELS:
                raise ValueError(f"{path}:{n}: label must be one of {', '.join(LABELS)}, got {row.get('label')!r}")
            answers[str(row["id"])] = row["label"]
    return answers


def agreement(authored: dict[str, str], answers: dict[str, str]) -> dict[str, Any]:
    """Cohen's kappa and the confusion between the authors' labels (rows) and the second hands' (columns)."""
    ids = sorted(set(authored) & set(answers))
    a = [authored[i] for i in ids]
    b = [answers[i] for i in ids]
    return {
        "n": len(ids),
        "observed_agreement": round(float(np.mean([x == y for x, y in zip(a, b, strict=True)])), 4) if ids else None,
        "cohen_kappa": round(float(cohen_kappa_score(a, b, labels=list(LABELS))), 4) if ids else None,
        "confusion": {"labels": list(LABELS), "rows_author_cols_second": confusion_matrix(a, b, labels=list(LABELS)).tolist()},
        "disagreements": [{"id": i, "author": authored[i], "second": answers[i]} for i in ids if authored[i] != answers[i]],
    }
