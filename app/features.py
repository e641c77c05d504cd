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
"context__owner_replied_after"). Serving computes the same features from the fitted parts
(`app/fast.py`); training and cross-validation use this pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion, Pipeline

from app.context import context_rows
from app.fast import FEATURES_VERSION, split_name  # noqa: F401  # re-exported for training and notebooks
from app.items import Item
from app.signals import registry, signal_rows
from app.text import WORD_PATTERN, Prepared, norm_text, prepare, thread_text

BLOCKS = ("word", "char", "thread", "signal", "context")
_TFIDF: dict[str, Any] = {"sublinear_tf": True, "lowercase": False, "dtype": np.float64}  # every text block


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


class SignalTransformer(TransformerMixin, BaseEstimator):
    """Prepared items -> the emitted text signals (lexicon, pattern, combination), one column each."""

    def fit(self, X: Sequence[Prepared], y: Any = None) -> SignalTransformer:
        self.names_ = np.array([s.name for s in registry().features(("lexicon", "pattern", "combination"))], dtype=object)
        return self

    def transform(self, X: Sequence[Prepared]) -> sp.csr_matrix:
        return sp.csr_matrix(signal_rows(X, self.names_))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return self.names_.copy()


class ContextTransformer(TransformerMixin, BaseEstimator):
    """Prepared items -> the context signals (the conversation and the sender), one column each."""

    def fit(self, X: Sequence[Prepared], y: Any = None) -> ContextTransformer:
        self.names_ = np.array([s.name for s in registry().features(("context",))], dtype=object)
        return self

    def transform(self, X: Sequence[Prepared]) -> sp.csr_matrix:
        return sp.csr_matrix(context_rows([p.item for p in X], self.names_))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return self.names_.copy()


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
            preprocessor=norm_text, token_pattern=WORD_PATTERN, ngram_range=(1, 2), min_df=word_min_df, **_TFIDF
        ),
        "char": TextVectorizer(preprocessor=norm_text, analyzer="char_wb", ngram_range=char_ngrams, min_df=char_min_df, **_TFIDF),
        "thread": TextVectorizer(preprocessor=thread_text, token_pattern=WORD_PATTERN, min_df=thread_min_df, **_TFIDF),
        "signal": SignalTransformer(),
        "context": ContextTransformer(),
    }
    return Pipeline([("prepare", ItemPreparer()), ("union", FeatureUnion([(b, parts[b]) for b in BLOCKS if b in blocks]))])
