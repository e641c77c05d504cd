"""Named signals: readable features defined as data, as Rspamd and SpamAssassin keep their rules.

`app/rules/signals.toml` defines each signal (name, kind, description, examples that must
fire and must stay quiet) and `app/rules/lexicons/*.toml` hold the phrases of lexicon
signals, one file per language or family of languages. This module loads them into a
registry, computes every signal of a prepared item in one pass over its words, and
wraps that as a scikit-learn transformer. Context signals (the conversation and the
sender) are computed in `app/context.py` from the same registry.
"""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import numpy as np

from app import kernels
from app.codes import CLASSES, packed_codes, text_codes
from app.text import MERGE_TOKEN, SINGLE_WORD, WORD_MARKS, Prepared, lower, only_greets

RULES_DIR = Path(__file__).with_name("rules")
KINDS = ("lexicon", "pattern", "combination", "context")
MAX_PHRASE_WORDS = 8
# A word: a run of word characters and the combining marks after them (Devanagari vowel signs), or
# one character of a script written without spaces (SINGLE_WORD).
_TOKEN = re.compile(f"(?=\\w)[{SINGLE_WORD}]|[^\\W{SINGLE_WORD}](?:[^\\W{SINGLE_WORD}]|[{WORD_MARKS}])*")
_ASCII_TOKEN = re.compile(r"\w+")  # the same words in ASCII text, about four times faster
_APOSTROPHE_MARKS = "'’`´"


def _token_pattern(text: str) -> re.Pattern[str]:
    return _ASCII_TOKEN if text.isascii() else _TOKEN


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
    relationship: bool = False
    negatable: bool = False
    fires: tuple[Any, ...] = ()
    quiet: tuple[Any, ...] = ()


@dataclass(frozen=True)
class PhraseTrie:
    """The lexicons as `kernels.lexicon_hits` reads them: a table of their words, and a trie of
    their phrases whose nodes list the signals (by index in `signals`) of the phrase ending there."""

    signals: tuple[str, ...]
    arrays: tuple[np.ndarray, ...]

    @classmethod
    def build(cls, phrases: dict[str, tuple[str, ...]]) -> PhraseTrie:
        word_ids: dict[str, int] = {}
        edges: dict[tuple[int, int], int] = {}
        node_signals: list[list[str]] = [[]]
        for key, names in phrases.items():
            node = 0
            for word in key.split(" "):
                edge = (node, word_ids.setdefault(word, len(word_ids)))
                if edge not in edges:
                    edges[edge] = len(node_signals)
                    node_signals.append([])
                node = edges[edge]
            node_signals[node] = list(names)
        signals = tuple(dict.fromkeys(name for names in node_signals for name in names))
        index = {name: i for i, name in enumerate(signals)}
        tcodes, tstarts = packed_codes(list(word_ids))
        tcodes = tcodes.copy()  # writable, as the TF-IDF blocks' terms: one compiled signature for the lookups
        slots, hashes = kernels.build_term_table(tcodes, tstarts)
        parents = np.array([e[0] for e in edges], dtype=np.int64)
        words_ = np.array([e[1] for e in edges], dtype=np.int64)
        edge_slots, edge_keys = kernels.build_pair_table(parents, words_, len(word_ids))
        node_ptr = np.zeros(len(node_signals) + 1, dtype=np.int64)
        np.cumsum([len(names) for names in node_signals], out=node_ptr[1:])
        node_signal = np.array([index[name] for names in node_signals for name in names], dtype=np.int64)
        child = np.array(list(edges.values()), dtype=np.int64)
        return cls(signals, (slots, hashes, tcodes, tstarts, edge_slots, edge_keys, child, node_ptr, node_signal))

    def hits(self, texts: Sequence[str]) -> tuple[np.ndarray, ...]:
        """(doc_ptr, signal index, first word, last word + 1, start, end) of every phrase found in the
        texts; start and end are offsets in the lower-cased text (an apostrophe inside a word is in it)."""
        codes, starts = text_codes([t.lower() for t in texts])
        doc_ptr, signal, first, last, start, end = kernels.lexicon_hits(codes, starts, CLASSES, self.arrays, MAX_PHRASE_WORDS)
        return doc_ptr, signal, first, last, start, end


@dataclass(frozen=True)
class Registry:
    """Every signal, the phrase index of the lexicons, and which signals are features."""

    signals: dict[str, Signal]
    phrases: dict[str, tuple[str, ...]]  # phrase (space-joined words) -> signal names
    languages: tuple[str, ...]
    lexicon_sizes: dict[str, int] = field(default_factory=dict)
    negations: frozenset[str] = frozenset()  # words that cancel a negatable signal's phrase after them

    def features(self, kind: Iterable[str]) -> list[Signal]:
        kinds = set(kind)
        return [s for s in self.signals.values() if s.emit and s.kind in kinds]

    @cached_property
    def trie(self) -> PhraseTrie:
        """The lexicons compiled for the phrase scan."""
        return PhraseTrie.build(self.phrases)

    @cached_property
    def negatable(self) -> np.ndarray:
        """Indices in `trie.signals` of the signals whose phrases a negation before them cancels."""
        return np.array([i for i, name in enumerate(self.trie.signals) if self.signals[name].negatable], dtype=np.int64)

    @cached_property
    def text_plan(self) -> tuple[tuple[str, ...], dict[str, float], tuple[Signal, ...], tuple[Signal, ...]]:
        """(every text signal's name, lexicon caps, pattern signals, combination signals in order)."""
        text = [s for s in self.signals.values() if s.kind in ("lexicon", "pattern", "combination")]
        caps = {s.name: float(s.cap) for s in text if s.kind == "lexicon"}
        patterns = tuple(s for s in text if s.kind == "pattern")
        combos = tuple(s for s in text if s.kind == "combination")
        return tuple(s.name for s in text), caps, patterns, combos

    @cached_property
    def text_columns(self) -> tuple[dict[str, int], np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
        """For `text_signal_matrix`: each text signal's column; the columns and caps of the trie's
        signals; the combinations as arrays (`kernels.combinations`)."""
        names, caps, _, combos = self.text_plan
        column = {name: j for j, name in enumerate(names)}
        lexicon = np.array([column[name] for name in self.trie.signals], dtype=np.int64)
        cap = np.array([caps[name] for name in self.trie.signals], dtype=np.float64)
        arrays: list[np.ndarray] = [np.array([column[c.name] for c in combos], dtype=np.int64)]
        for part in ("all", "none", "any"):
            lists = [[column[name] for name in getattr(c, part)] for c in combos]
            arrays.append(np.cumsum([0, *map(len, lists)], dtype=np.int64))
            arrays.append(np.array([j for js in lists for j in js], dtype=np.int64))
        return column, lexicon, cap, tuple(arrays)


def words(text: str) -> list[str]:
    """Lower-case words with apostrophes dropped ("I'm" -> "im"), as lexicon phrases are matched; in
    Chinese, Japanese and Korean every character is a word ("副業です" -> 副, 業, で, す)."""
    text = drop_apostrophes(lower(text))
    return _token_pattern(text).findall(text)


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
    negations = frozenset(w.lower() for w in data.get("negations", []))
    return Registry(signals, {k: tuple(v) for k, v in index.items()}, tuple(languages), dict(sizes), negations)


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


def _greeting_only(p: Prepared) -> float:
    return float(not p.norm and only_greets(p.item.text))  # prepare() leaves a bare greeting no text


PATTERNS: dict[str, Callable[[Prepared], float]] = {
    "links": _links,
    "shortened_links": _shortened,
    "markup": _markup,
    "merge_tokens": _merge_tokens,
    "salutation_with_initial": _salutation_with_initial,
    "money_amounts": _money,
    "short_text": _short,
    "long_text": _long,
    "greeting_only": _greeting_only,
}


_CLAUSE_END = re.compile(r"[.,;:!?\n]")


def _negated(text: str, start: int, negations: frozenset[str]) -> bool:
    """One of the three words before `start`, in its clause, negates ("there is no placement fee")."""
    clause = _CLAUSE_END.split(text[max(0, start - 80) : start])[-1]
    return any(w.strip("\"'()[]¿¡") in negations for w in clause.split()[-3:])


@dataclass(frozen=True)
class LexiconHits:
    """The lexicon phrases found in a chunk of texts: doc d's hits are doc_ptr[d]:doc_ptr[d + 1]."""

    trie: PhraseTrie
    doc_ptr: np.ndarray
    signal: np.ndarray  # index in trie.signals
    first: np.ndarray  # first word
    last: np.ndarray  # last word + 1
    start: np.ndarray  # where the first word starts in the lower-cased text
    end: np.ndarray  # where the last word ends

    @classmethod
    def find(cls, texts: Sequence[str], reg: Registry | None = None) -> LexiconHits:
        reg = reg or registry()
        doc_ptr, signal, *where = reg.trie.hits(texts)
        candidates = np.flatnonzero(np.isin(signal, reg.negatable))
        if len(candidates):
            docs = np.searchsorted(doc_ptr, candidates, side="right") - 1
            dropped = [
                i for i, d in zip(candidates.tolist(), docs.tolist(), strict=True)
                if _negated(texts[d].lower(), int(where[2][i]), reg.negations)
            ]  # fmt: skip
            if dropped:
                keep = np.ones(len(signal), dtype=bool)
                keep[dropped] = False
                doc = np.repeat(np.arange(len(doc_ptr) - 1), np.diff(doc_ptr))
                doc_ptr = np.concatenate(([0], np.cumsum(np.bincount(doc[keep], minlength=len(doc_ptr) - 1))))
                signal, where = signal[keep], [w[keep] for w in where]
        return cls(reg.trie, doc_ptr, signal, *where)

    def of(self, d: int) -> list[tuple[str, int, int, int, int]]:
        """(signal, first word, last word + 1, start, end) of each of doc d's hits, in order."""
        return self._rows[self._doc_ptr[d] : self._doc_ptr[d + 1]]

    @cached_property
    def _rows(self) -> list[tuple[str, int, int, int, int]]:
        # read per reason, a few per doc: one conversion per chunk, not one per call
        names = self.trie.signals
        columns = (self.signal, self.first, self.last, self.start, self.end)
        return [(names[s], *rest) for s, *rest in zip(*(c.tolist() for c in columns), strict=True)]

    @cached_property
    def _doc_ptr(self) -> list[int]:
        return self.doc_ptr.tolist()


def phrase_hits(text: str, reg: Registry | None = None) -> list[tuple[str, int, int]]:
    """(signal, first word, last word + 1) for every lexicon phrase found in `text`, by word position."""
    return [(name, i, j) for name, i, j, _, _ in LexiconHits.find([text], reg).of(0)]


def text_signal_matrix(prepared: Sequence[Prepared], reg: Registry | None = None, hits: LexiconHits | None = None) -> np.ndarray:
    """Every lexicon, pattern and combination signal of every item, 0 to 1: an (items, text_plan names) array.

    A lexicon signal counts its phrases (`hits`, found here when not given) up to its cap; a
    pattern is a function of the item; a combination fires (1.0) when all of `all`, none of
    `none` and one of `any` have fired before it.
    """
    reg = reg or registry()
    names, _, patterns, _ = reg.text_plan
    column, lexicon, cap, combos = reg.text_columns
    out = np.zeros((len(prepared), len(names)))
    if not len(prepared):
        return out
    hits = hits or LexiconHits.find([p.raw for p in prepared], reg)
    np.add.at(out, (np.repeat(np.arange(len(prepared)), np.diff(hits.doc_ptr)), lexicon[hits.signal]), 1.0)
    out[:, lexicon] = np.minimum(out[:, lexicon], cap) / cap
    for s in patterns:
        function = PATTERNS[s.function]
        out[:, column[s.name]] = [function(p) for p in prepared]
    kernels.combinations(out, *combos)
    return out


def fired_text_signals(p: Prepared, reg: Registry | None = None) -> dict[str, float]:
    """The lexicon, pattern and combination signals of a prepared item that fire, with their values (0 to 1]."""
    reg = reg or registry()
    row = text_signal_matrix([p], reg)[0].tolist()
    return {name: value for name, value in zip(reg.text_plan[0], row, strict=True) if value}


def text_signal_values(p: Prepared, reg: Registry | None = None) -> dict[str, float]:
    """Every lexicon, pattern and combination signal of a prepared item (emitted or not), 0 to 1."""
    reg = reg or registry()
    return dict(zip(reg.text_plan[0], text_signal_matrix([p], reg)[0].tolist(), strict=True))


def signal_rows(prepared: Sequence[Prepared], names: Sequence[str] | np.ndarray, hits: LexiconHits | None = None) -> np.ndarray:
    """The values of the named text signals for every item: an (items, names) array."""
    reg = registry()
    matrix = text_signal_matrix(prepared, reg, hits)
    column = reg.text_columns[0]
    out = np.zeros((len(prepared), len(names)))
    for j, name in enumerate(names):
        if (k := column.get(str(name))) is not None:
            out[:, j] = matrix[:, k]
    return out


def signal_spans(p: Prepared, name: str, lexicon: LexiconHits | None = None, d: int = 0, limit: int = 5) -> list[tuple[int, int]]:
    """Spans of the received text where a lexicon signal's phrases were found (none when markup moved the text).

    `lexicon`, doc `d`: the chunk's phrase hits when they are known already; else the text is scanned.
    """
    if p.raw != p.item.text or len(p.raw.lower()) != len(p.raw):
        return []  # markup or lower-casing ("İ") shifted the offsets; no spans rather than wrong ones
    if lexicon is None:
        lexicon, d = LexiconHits.find([p.raw]), 0
    spans: list[tuple[int, int]] = []
    for signal, _, _, start, end in lexicon.of(d):
        if signal == name and (span := (start, end)) not in spans:
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
