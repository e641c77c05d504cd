"""Named signals: readable features defined as data, as Rspamd and SpamAssassin keep their rules.

`app/rules/signals.toml` defines each signal (name, kind, description, examples that must
fire and must stay quiet) and `app/rules/lexicons/*.toml` hold the phrases of lexicon
signals, one file per language or family of languages. This module loads them into a
registry, computes every signal of a prepared item in one pass over its words, and
wraps that as a scikit-learn transformer. Context signals (the conversation and the
sender) are computed in `app/context.py` from the same registry.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from app.text import MERGE_TOKEN, Prepared

RULES_DIR = Path(__file__).with_name("rules")
KINDS = ("lexicon", "pattern", "combination", "context")
MAX_PHRASE_WORDS = 5
_TOKEN = re.compile(r"\w+")
_APOSTROPHE_MARKS = "'’`´"


@dataclass(frozen=True)
class Signal:
    """One named signal of the registry."""

    name: str
    kind: str
    description: str
    cap: float = 1.0
    function: str = ""
    all: tuple[str, ...] = ()
    any: tuple[str, ...] = ()
    none: tuple[str, ...] = ()
    emit: bool = True
    style: bool = False
    fires: tuple[Any, ...] = ()
    quiet: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Registry:
    """Every signal, the phrase index of the lexicons, and which signals are features."""

    signals: dict[str, Signal]
    phrases: dict[str, tuple[str, ...]]  # phrase (space-joined words) -> signal names
    phrase_starts: frozenset[str]
    languages: tuple[str, ...]
    lexicon_sizes: dict[str, int] = field(default_factory=dict)

    def features(self, kind: Iterable[str]) -> list[Signal]:
        kinds = set(kind)
        return [s for s in self.signals.values() if s.emit and s.kind in kinds]

    @cached_property
    def lookup_words(self) -> frozenset[str]:
        """Words that can start a phrase hit: one-word phrases and the first words of longer ones."""
        return frozenset(k for k in self.phrases if " " not in k) | self.phrase_starts

    @cached_property
    def phrase_prefixes(self) -> frozenset[str]:
        """The beginnings (two words or more) of longer phrases: a scan stops where none continues."""
        out: set[str] = set()
        for key in self.phrases:
            parts = key.split(" ")
            out.update(" ".join(parts[:k]) for k in range(2, len(parts)))
        return frozenset(out)

    @cached_property
    def text_plan(self) -> tuple[tuple[str, ...], dict[str, float], tuple[Signal, ...], tuple[Signal, ...]]:
        """(every text signal's name, lexicon caps, pattern signals, combination signals in order)."""
        text = [s for s in self.signals.values() if s.kind in ("lexicon", "pattern", "combination")]
        caps = {s.name: float(s.cap) for s in text if s.kind == "lexicon"}
        patterns = tuple(s for s in text if s.kind == "pattern")
        combos = tuple(s for s in text if s.kind == "combination")
        return tuple(s.name for s in text), caps, patterns, combos


def words(text: str) -> list[str]:
    """Lower-case words with apostrophes dropped ("I'm" -> "im"), as lexicon phrases are matched."""
    return _TOKEN.findall(drop_apostrophes(text.lower()))


def drop_apostrophes(text: str) -> str:
    """`text` without apostrophes of any kind (str.replace: str.translate looks every character up in a dict)."""
    for mark in _APOSTROPHE_MARKS:
        if mark in text:
            text = text.replace(mark, "")
    return text


def _phrase_key(phrase: str) -> str:
    return " ".join(words(phrase))


def load_registry(rules_dir: Path = RULES_DIR) -> Registry:
    """Read signals.toml and every lexicon file; ValueError naming the file and the problem."""
    path = rules_dir / "signals.toml"
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    signals: dict[str, Signal] = {}
    for n, raw in enumerate(data.get("signal", [])):
        where = f"{path.name}: signal #{n + 1} ({raw.get('name', '?')})"
        unknown = set(raw) - {f for f in Signal.__dataclass_fields__}
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
        if raw.get("kind") not in KINDS:
            raise ValueError(f"{where}: kind must be one of {KINDS}")
        if not raw.get("description"):
            raise ValueError(f"{where}: a description is required")
        if raw["name"] in signals:
            raise ValueError(f"{where}: defined twice")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
        signals[raw["name"]] = Signal(**values)  # type: ignore[arg-type]  # keys checked above
    for s in signals.values():
        for ref in (*s.all, *s.any, *s.none):
            if ref not in signals:
                raise ValueError(f"{path.name}: {s.name} refers to unknown signal {ref!r}")
    index: dict[str, list[str]] = {}
    languages: list[str] = []
    sizes: Counter[str] = Counter()
    for lex in sorted((rules_dir / "lexicons").glob("*.toml")):
        lex_data = tomllib.loads(lex.read_text(encoding="utf-8"))
        languages.append(str(lex_data.get("language", lex.stem)))
        for name, phrases in lex_data.get("phrases", {}).items():
            if name not in signals or signals[name].kind != "lexicon":
                raise ValueError(f"{lex.name}: {name!r} is not a lexicon signal of signals.toml")
            for phrase in phrases:
                key = _phrase_key(phrase)
                if not key or len(key.split()) > MAX_PHRASE_WORDS:
                    raise ValueError(f"{lex.name}: {name}: phrase {phrase!r} must have 1-{MAX_PHRASE_WORDS} words")
                index.setdefault(key, [])
                if name not in index[key]:
                    index[key].append(name)
                    sizes[name] += 1
    for s in signals.values():
        if s.kind == "lexicon" and not sizes[s.name]:
            raise ValueError(f"lexicon signal {s.name} has no phrases in any lexicon file")
    starts = frozenset(k.split(" ")[0] for k in index if " " in k)
    return Registry(signals, {k: tuple(v) for k, v in index.items()}, starts, tuple(languages), dict(sizes))


@cache
def registry() -> Registry:
    """The registry shipped with the code (loaded once)."""
    return load_registry()


# --------------------------------------------------------------------------------------
# Computing the text signals of one prepared item
# --------------------------------------------------------------------------------------

_SHORTENERS = frozenset(
    "bit.ly tinyurl.com t.co goo.gl ow.ly is.gd buff.ly rb.gy cutt.ly shorturl.at tiny.cc rebrand.ly bl.ink s.id t.ly "
    "v.gd shorte.st linktr.ee lnkd.in".split()
)
# The lookahead names every character an amount can start with: the engine rules a position out
# with one test instead of trying each alternative there (same matches, about twice as fast).
_MONEY = re.compile(
    r"(?=[$€£₦₹₱₨0-9riunkp])"
    r"(?:[$€£₦₹₱₨]\s?[0-9]|[0-9](?:\s?k)?\s?(?:usd|eur|gbp|inr|ngn|naira|dollars|rupees|rs|lakhs?|crores?|usdt)\b"
    r"|\b(?:rs|inr|usd|ngn|kes|php|idr)\.?\s?[0-9])",
    re.IGNORECASE,
)
_DIGIT = re.compile(r"[0-9]")
_INITIAL = re.compile(r"(?:hi|hello|hey|dear)\s{1,3}[A-Z][\w'-]{1,30}\s{1,3}[A-Z]\.(?=\s|,|!|$)", re.IGNORECASE)


def _links(p: Prepared) -> float:
    return min(len(p.domains), 3) / 3


def _shortened(p: Prepared) -> float:
    return float(any(d in _SHORTENERS for d in p.domains))


def _markup(p: Prepared) -> float:
    return float(p.has_markup)


def _merge_tokens(p: Prepared) -> float:
    text = p.item.text
    if not any(c in text for c in "%{<*["):  # every merge token holds one of these
        return 0.0
    return float(MERGE_TOKEN.search(text) is not None)


def _salutation_with_initial(p: Prepared) -> float:
    return float(_INITIAL.match(p.raw.lstrip()) is not None)


def _money(p: Prepared) -> float:
    if _DIGIT.search(p.raw) is None:  # every amount has a digit
        return 0.0
    return min(len(_MONEY.findall(p.raw)), 2) / 2


def _short(p: Prepared) -> float:
    return float(0 < len(p.raw.strip()) < 25)


def _long(p: Prepared) -> float:
    return float(len(p.raw.strip()) > 600)


PATTERNS: dict[str, Callable[[Prepared], float]] = {
    "links": _links,
    "shortened_links": _shortened,
    "markup": _markup,
    "merge_tokens": _merge_tokens,
    "salutation_with_initial": _salutation_with_initial,
    "money_amounts": _money,
    "short_text": _short,
    "long_text": _long,
}


def phrase_hits(text: str, reg: Registry) -> list[tuple[str, int, int]]:
    """(signal, first word, last word + 1) for every lexicon phrase found in `text`, by word position."""
    if reg is registry():
        return list(_shipped_phrase_hits(text))
    return _phrase_hits(text, reg)


@lru_cache(maxsize=8192)
def _shipped_phrase_hits(text: str) -> tuple[tuple[str, int, int], ...]:
    # A chunk's texts are scanned for features and again for the spans of their reasons.
    return tuple(_phrase_hits(text, registry()))


def _phrase_hits(text: str, reg: Registry) -> list[tuple[str, int, int]]:
    tokens = words(text)
    hits: list[tuple[str, int, int]] = []
    phrases, starts, lookup, prefixes = reg.phrases, reg.phrase_starts, reg.lookup_words, reg.phrase_prefixes
    n = len(tokens)
    for i in [i for i, tok in enumerate(tokens) if tok in lookup]:
        tok = tokens[i]
        for name in phrases.get(tok, ()):
            hits.append((name, i, i + 1))
        if tok in starts:
            key = tok
            for j in range(i + 1, min(i + MAX_PHRASE_WORDS, n)):
                key = f"{key} {tokens[j]}"
                for name in phrases.get(key, ()):
                    hits.append((name, i, j + 1))
                if key not in prefixes:
                    break
    return hits


def fired_text_signals(p: Prepared, reg: Registry | None = None) -> dict[str, float]:
    """The lexicon, pattern and combination signals of a prepared item that fire, with their values (0 to 1]."""
    reg = reg or registry()
    _, caps, patterns, combos = reg.text_plan
    fired: dict[str, float] = {}
    for name, count in Counter(name for name, _, _ in phrase_hits(p.raw, reg)).items():
        fired[name] = min(count, caps[name]) / caps[name]
    for s in patterns:
        value = PATTERNS[s.function](p)
        if value:
            fired[s.name] = value
    for s in combos:
        ok = all(a in fired for a in s.all) and not any(x in fired for x in s.none)
        if ok and (not s.any or any(a in fired for a in s.any)):
            fired[s.name] = 1.0
    return fired


def text_signal_values(p: Prepared, reg: Registry | None = None) -> dict[str, float]:
    """Every lexicon, pattern and combination signal of a prepared item (emitted or not), 0 to 1."""
    reg = reg or registry()
    return dict.fromkeys(reg.text_plan[0], 0.0) | fired_text_signals(p, reg)


def signal_rows(prepared: Sequence[Prepared], names: Sequence[str] | np.ndarray) -> np.ndarray:
    """The values of the named text signals for every item: an (items, names) array."""
    reg = registry()
    column = {str(name): j for j, name in enumerate(names)}
    out = np.zeros((len(prepared), len(column)))
    for i, p in enumerate(prepared):
        for name, value in fired_text_signals(p, reg).items():
            j = column.get(name)
            if j is not None:
                out[i, j] = value
    return out


def signal_spans(p: Prepared, name: str, reg: Registry | None = None, limit: int = 5) -> list[tuple[int, int]]:
    """Spans of the received text where a lexicon signal's phrases were found (none when markup moved the text)."""
    reg = reg or registry()
    low = p.raw.lower()
    if p.raw != p.item.text or len(low) != len(p.raw) or len(drop_apostrophes(p.raw)) != len(p.raw):
        return []  # markup, lower-casing ("İ") or apostrophes shifted the offsets; no spans rather than wrong ones
    hits = [(a, b) for signal, a, b in phrase_hits(p.raw, reg) if signal == name][: 4 * limit]
    if not hits:
        return []
    last = max(b for _, b in hits)  # word positions up to the last hit are all that is needed
    positions = [m.span() for m in itertools.islice(_TOKEN.finditer(low), last)]
    spans: list[tuple[int, int]] = []
    for a, b in hits:
        if b <= len(positions):
            span = (positions[a][0], positions[b - 1][1])
            if span not in spans:
                spans.append(span)
        if len(spans) >= limit:
            break
    return spans


def __getattr__(name: str) -> Any:
    # Model files saved before the transformer moved to app/features.py name it here.
    if name == "SignalTransformer":
        from app.features import SignalTransformer

        return SignalTransformer
    raise AttributeError(name)
