"""Context signals: what the conversation and the sender's profile say, as named features.

Each fires (1.0) only when the fact is known: a text scored alone has no context, and
every context signal is 0 for it, so a pasted message is judged on its words.
Definitions and descriptions live in `app/rules/signals.toml` (kind "context").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from app.items import Item, is_anonymous
from app.signals import registry
from app.text import greets_someone_else, says_nothing_alone

_DAY = 24 * 60
_YEAR = 365 * _DAY


def _is(value: Any, expected: Any) -> bool:
    return value is not None and value == expected


def _bare_turn_from_stranger(it: Item) -> bool:
    return _is(it.is_connection, False) and _is(it.owner_messages_before, 0) and says_nothing_alone(it.text)


def _bare_turn_from_contact(it: Item) -> bool:
    known = _is(it.is_connection, True) or (it.owner_messages_before or 0) > 0
    return known and says_nothing_alone(it.text)


CONTEXT_FUNCTIONS: dict[str, Callable[[Item], bool]] = {
    "invite_note": lambda it: it.kind == "invite" and bool(it.text.strip()),
    "owner_wrote_before": lambda it: (it.owner_messages_before or 0) > 0,
    "owner_never_wrote": lambda it: _is(it.owner_messages_before, 0),
    "owner_started": lambda it: _is(it.owner_started, True),
    "owner_replied_after": lambda it: _is(it.owner_replied_after, True),
    "no_reply_after": lambda it: _is(it.owner_replied_after, False),
    # Only where the owner never wrote: friends send several messages in a row too (corpus v2 audit).
    "second_unanswered": lambda it: _is(it.prior_unanswered, 1) and _is(it.owner_messages_before, 0),
    "third_unanswered": lambda it: (it.prior_unanswered or 0) >= 2 and _is(it.owner_messages_before, 0),
    "ongoing_thread": lambda it: (it.owner_messages_before or 0) >= 2 and (it.sender_messages_before or 0) >= 2,
    "not_a_connection": lambda it: _is(it.is_connection, False),
    "just_connected": lambda it: it.minutes_since_connected is not None and it.minutes_since_connected < _DAY,
    "long_connected": lambda it: it.minutes_since_connected is not None and it.minutes_since_connected > _YEAR,
    "greets_someone_else": greets_someone_else,
    "bare_turn_from_stranger": _bare_turn_from_stranger,
    "bare_turn_from_contact": _bare_turn_from_contact,
    "anonymous_sender": lambda it: is_anonymous(it.sender_name),
    "few_connections": lambda it: it.sender_connections is not None and it.sender_connections < 50,
    "has_mutual_connections": lambda it: (it.mutual_connections or 0) > 0,
    "no_photo": lambda it: _is(it.sender_has_photo, False),
    "new_account": lambda it: it.sender_account_age_days is not None and it.sender_account_age_days < 30,
}


def context_signal_values(item: Item) -> dict[str, float]:
    """Every context signal of an item, 1.0 or 0.0."""
    return {s.name: float(CONTEXT_FUNCTIONS[s.function](item)) for s in registry().features(("context",))}


def context_rows(items: Sequence[Item], names: Sequence[str] | np.ndarray) -> np.ndarray:
    """The values of the named context signals for every item: an (items, names) array."""
    signals = registry().signals
    functions = [CONTEXT_FUNCTIONS[signals[str(n)].function] for n in names]
    out = np.zeros((len(items), len(functions)))
    for j, function in enumerate(functions):  # a column at a time: map() runs the calls without a Python loop
        out[:, j] = np.fromiter(map(function, items), dtype=np.float64, count=len(items))
    return out


def __getattr__(name: str) -> Any:
    # Model files saved before the transformer moved to app/features.py name it here.
    if name == "ContextTransformer":
        from app.features import ContextTransformer

        return ContextTransformer
    raise AttributeError(name)
