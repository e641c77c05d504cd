"""The one definition of the model's features: a scikit-learn pipeline over items.

    Pipeline([
        ("prepare", ItemPreparer()),          # items -> Prepared (normalised once)
        ("union", FeatureUnion([
            ("word", TfidfVectorizer(...)),   # word 1-2 grams of the normalised text
            ("char", TfidfVectorizer(...)),   # character 3-5 grams inside word boundaries
            ("thread", TfidfVectorizer(...)), # words of the sender's earlier messages in the conversation
            ("signal", SignalTransformer()),  # named text signals (app/rules)
            ("context", ContextTransformer()),# named conversation and profile signals
        ])),
    ])

Feature names come from `get_feature_names_out` ("word__bumping this", "signal__link",
"context__owner_replied_after"). `word_evidence` turns a row's n-gram contributions back
into contributions of the words of the received text, for readable reasons.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion, Pipeline

from app.context import ContextTransformer
from app.items import Item
from app.signals import SignalTransformer
from app.text import Prepared, norm_text, prepare, thread_text

# Bump when a change here or in app/text.py, app/signals.py, app/context.py or app/rules changes
# what a fitted pipeline computes: saved models record it and loading refuses a mismatch.
FEATURES_VERSION = 5
# Words of two or more letters, or a single symbol that is not punctuation (emoji, $, ₹, ?, !).
WORD_PATTERN = r"(?u)\w\w+|[^\w\s.,;:'\"()\[\]{}<>/\\|_*#@&~^`=+-]"
_WORD = re.compile(WORD_PATTERN)
_CHUNK = re.compile(r"\S+")
BLOCKS = ("word", "char", "thread", "signal", "context")


class TextVectorizer(TfidfVectorizer):
    """`TfidfVectorizer` whose vocabulary is saved as one string, not a dict of 250,000 entries.

    skops rebuilds a dict node by node: the shipped model took 12 s to load with plain
    vectorizers. The packed form (terms in column order, NUL-separated) loads in a fraction of
    a second; the fitted vectorizer is otherwise the same object.
    """

    _SEP = "\x00"

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        vocabulary = state.get("vocabulary_")
        if isinstance(vocabulary, dict):
            terms = sorted(vocabulary, key=vocabulary.__getitem__)
            if not any(self._SEP in t for t in terms) and [vocabulary[t] for t in terms] == list(range(len(terms))):
                state = {k: v for k, v in state.items() if k != "vocabulary_"}
                state["packed_vocabulary_"] = self._SEP.join(terms) if terms else None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        if "packed_vocabulary_" in state:
            packed = state.pop("packed_vocabulary_")
            state["vocabulary_"] = {t: i for i, t in enumerate(packed.split(self._SEP))} if packed else {}
        super().__setstate__(state)


class ItemPreparer(TransformerMixin, BaseEstimator):
    """Items -> `Prepared` (the normalised text and its facts), computed once for every block."""

    def fit(self, X: Sequence[Item], y: Any = None) -> ItemPreparer:
        return self

    def transform(self, X: Sequence[Item]) -> list[Prepared]:
        return [prepare(item) for item in X]

    def get_feature_names_out(self, input_features: Any = None) -> Any:
        return input_features  # items in, prepared items out: the next step names the features


def make_features(
    word_min_df: int = 2,
    char_min_df: int = 3,
    char_ngrams: tuple[int, int] = (3, 5),
    thread_min_df: int = 3,
    blocks: Sequence[str] = BLOCKS,
) -> Pipeline:
    """The feature pipeline (unfitted); `blocks` picks which of BLOCKS to use."""
    unknown = set(blocks) - set(BLOCKS)
    if unknown:
        raise ValueError(f"unknown feature blocks {sorted(unknown)}; choose from {BLOCKS}")
    parts: dict[str, Any] = {
        "word": TextVectorizer(
            preprocessor=norm_text,
            token_pattern=WORD_PATTERN,
            ngram_range=(1, 2),
            min_df=word_min_df,
            sublinear_tf=True,
            lowercase=False,
            dtype=np.float64,
        ),
        "char": TextVectorizer(
            preprocessor=norm_text,
            analyzer="char_wb",
            ngram_range=char_ngrams,
            min_df=char_min_df,
            sublinear_tf=True,
            lowercase=False,
            dtype=np.float64,
        ),
        "thread": TextVectorizer(
            preprocessor=thread_text,
            token_pattern=WORD_PATTERN,
            min_df=thread_min_df,
            sublinear_tf=True,
            lowercase=False,
            dtype=np.float64,
        ),
        "signal": SignalTransformer(),
        "context": ContextTransformer(),
    }
    return Pipeline([("prepare", ItemPreparer()), ("union", FeatureUnion([(b, parts[b]) for b in BLOCKS if b in blocks]))])


def split_name(feature: str) -> tuple[str, str]:
    """'word__bumping this' -> ('word', 'bumping this')."""
    block, _, name = feature.partition("__")
    return block, name


@dataclass(frozen=True)
class WordEvidence:
    """A word (a run of non-space characters) of the normalised text and its share of one class's decision value."""

    start: int  # in the normalised text
    end: int
    contribution: float


def word_evidence(
    prepared: Prepared,
    union: FeatureUnion,
    row: Any,  # a CSR row, or anything with its `indices` and `data`
    weights: np.ndarray,
    offset: dict[str, int],
    char_cache: dict[str, tuple[int, ...]] | None = None,
) -> list[WordEvidence]:
    """Split the word and character n-gram contributions of one row over the words that produced them.

    `weights` is one class's coefficient vector; `offset[block]` the first column of that block.
    A character n-gram belongs to one word; a word bigram is shared by its two words; an n-gram
    seen k times gives 1/k of its contribution to each occurrence. The per-word sums add up to
    the two blocks' total contribution. `char_cache` (word -> its character n-gram columns) may
    be shared between calls of one fitted union.
    """
    norm = prepared.norm
    chunks = [(m.start(), m.end()) for m in _CHUNK.finditer(norm)]
    if not chunks:
        return []
    blocks = dict(union.transformer_list)
    cols: list[int] = []
    owners: list[int] = []
    shares: list[float] = []
    if "char" in blocks:
        cache = char_cache if char_cache is not None else {}
        for c, (a, b) in enumerate(chunks):
            word = norm[a:b]
            hits = cache.get(word)
            if hits is None:
                hits = _char_columns(word, blocks["char"], offset["char"])
                if len(cache) < 500_000:
                    cache[word] = hits
            cols += hits
            owners += [c] * len(hits)
            shares += [1.0] * len(hits)
    if "word" in blocks:
        vocab = blocks["word"].vocabulary_
        base = offset["word"]
        tokens = [(m.group(0), m.start()) for m in _WORD.finditer(norm)]
        owner = np.searchsorted([a for a, _ in chunks], [pos for _, pos in tokens], side="right") - 1
        for i, (tok, _) in enumerate(tokens):
            j = vocab.get(tok)
            if j is not None:
                cols.append(base + j)
                owners.append(int(owner[i]))
                shares.append(1.0)
            if i + 1 < len(tokens):
                j = vocab.get(f"{tok} {tokens[i + 1][0]}")
                if j is not None:
                    cols += [base + j, base + j]
                    owners += [int(owner[i]), int(owner[i + 1])]
                    shares += [0.5, 0.5]
    if not cols:
        return []
    col_arr = np.asarray(cols)
    share_arr = np.asarray(shares)
    contribution = dict(zip(row.indices.tolist(), (row.data * weights[row.indices]).tolist(), strict=True))
    per_col = np.fromiter((contribution.get(j, 0.0) for j in cols), dtype=np.float64, count=len(cols))
    uniq, inverse = np.unique(col_arr, return_inverse=True)
    totals = np.bincount(inverse, weights=share_arr, minlength=len(uniq))
    word_share = np.bincount(np.asarray(owners), weights=per_col * share_arr / totals[inverse], minlength=len(chunks))
    return [WordEvidence(a, b, float(v)) for (a, b), v in zip(chunks, word_share, strict=True) if v != 0.0]


def _char_columns(word: str, vectorizer: TfidfVectorizer, base: int) -> tuple[int, ...]:
    """The columns of a word's character n-grams, as scikit-learn's char_wb analyzer cuts them."""
    vocab = vectorizer.vocabulary_
    lo, hi = vectorizer.ngram_range
    padded = f" {word} "
    out = []
    for n in range(lo, hi + 1):
        grams = [padded] if len(padded) <= n else [padded[i : i + n] for i in range(len(padded) - n + 1)]
        out += [base + j for j in map(vocab.get, grams) if j is not None]
        if len(padded) <= n:
            break  # as scikit-learn's char_wb: a short word counts once, whole
    return tuple(out)


def block_offsets(union: FeatureUnion) -> dict[str, int]:
    """The first column of each block in the union's output."""
    offsets: dict[str, int] = {}
    start = 0
    for name, transformer in union.transformer_list:
        offsets[name] = start
        start += len(transformer.get_feature_names_out())
    offsets["_end"] = start
    return offsets
