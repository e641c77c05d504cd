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
# `unseen_in_norm`: word blocks count the words they do not know in the norm (shipped since the fourteenth
# corpus round; the README's model card), else a short text in a language the corpus lacks is carried by
# its one known token ("!", "?", an emoji) at full weight.
_UNSEEN_IN_NORM: dict[str, Any] = {"norm": None, "l2_with_unseen": True}


class TextVectorizer(TfidfVectorizer):
    """`TfidfVectorizer` that can count unseen n-grams in its l2 norm, saved with a packed vocabulary.

    `l2_with_unseen=True` (with `norm=None`, word analyzer): rows are scaled to unit l2 norm as if
    every word outside the vocabulary were a term of its own, seen once, with the vocabulary's
    highest idf (unseen bigrams are not counted: most bigrams of any text are too rare to keep).
    A plain l2 norm counts only known terms, so "Takk fyrir!" in a language the corpus lacks is
    all "!" (value 1.0, whatever that token weighs), while in training "!" is one term among many.

    skops rebuilds a dict node by node: the shipped model took 12 s to load with plain
    vectorizers. The packed form (terms in column order, NUL-separated) loads in a fraction of
    a second; the fitted vectorizer is otherwise the same object.
    """

    _SEP = "\x00"

    def __init__(
        self,
        *,
        input: str = "content",
        encoding: str = "utf-8",
        decode_error: str = "strict",
        strip_accents: Any = None,
        lowercase: bool = True,
        preprocessor: Any = None,
        tokenizer: Any = None,
        analyzer: Any = "word",
        stop_words: Any = None,
        token_pattern: str | None = r"(?u)\b\w\w+\b",
        ngram_range: tuple[int, int] = (1, 1),
        max_df: float | int = 1.0,
        min_df: float | int = 1,
        max_features: int | None = None,
        vocabulary: Any = None,
        binary: bool = False,
        dtype: Any = np.float64,
        norm: str | None = "l2",
        use_idf: bool = True,
        smooth_idf: bool = True,
        sublinear_tf: bool = False,
        l2_with_unseen: bool = False,
    ):
        super().__init__(
            input=input, encoding=encoding, decode_error=decode_error, strip_accents=strip_accents,
            lowercase=lowercase, preprocessor=preprocessor, tokenizer=tokenizer, analyzer=analyzer,
            stop_words=stop_words, token_pattern=token_pattern, ngram_range=ngram_range, max_df=max_df,
            min_df=min_df, max_features=max_features, vocabulary=vocabulary, binary=binary, dtype=dtype,
            norm=norm, use_idf=use_idf, smooth_idf=smooth_idf, sublinear_tf=sublinear_tf,
        )  # fmt: skip
        self.l2_with_unseen = l2_with_unseen

    @property
    def unseen_idf(self) -> float:
        """The weight an unseen n-gram gets in the norm: the highest idf of the vocabulary (its rarest terms)."""
        return float(np.max(self.idf_)) if len(self.idf_) else 1.0

    def unseen_counts(self, raw_documents: Sequence[Any]) -> np.ndarray:
        """Per document, how many of its words (each occurrence) are not in the vocabulary."""
        preprocess, tokenize, vocabulary = self.build_preprocessor(), self.build_tokenizer(), self.vocabulary_
        return np.array(
            [sum(word not in vocabulary for word in tokenize(preprocess(self.decode(doc)))) for doc in raw_documents],
            dtype=np.float64,
        )

    def _unit_rows(self, X: Any, raw_documents: Sequence[Any]) -> sp.csr_matrix:
        X = sp.csr_matrix(X)
        if not self.l2_with_unseen:
            return X
        if self.norm is not None:
            raise ValueError("l2_with_unseen scales the rows itself: set norm=None")
        mass = np.asarray(X.multiply(X).sum(axis=1)).ravel() + self.unseen_counts(raw_documents) * self.unseen_idf**2
        scale = np.divide(1.0, np.sqrt(mass), out=np.zeros_like(mass), where=mass > 0)
        return sp.csr_matrix(sp.diags(scale) @ X)

    def fit_transform(self, raw_documents: Any, y: Any = None) -> sp.csr_matrix:
        docs = list(raw_documents)
        return self._unit_rows(super().fit_transform(docs), docs)

    def transform(self, raw_documents: Any) -> sp.csr_matrix:
        docs = list(raw_documents)
        return self._unit_rows(super().transform(docs), docs)

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
        state.setdefault("l2_with_unseen", False)  # saved before the option existed
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
    unseen_in_norm: bool = False,
    thread_weight: float = 1.0,
) -> Pipeline:
    """The feature pipeline (unfitted); `blocks` picks which of BLOCKS to use, `unseen_in_norm` how word blocks
    are normed, `thread_weight` how much the thread block's values are scaled (the union's `transformer_weights`)."""
    unknown = set(blocks) - set(BLOCKS)
    if unknown:
        raise ValueError(f"unknown feature blocks {sorted(unknown)}; choose from {BLOCKS}")
    words = {**_TFIDF, **(_UNSEEN_IN_NORM if unseen_in_norm else {})}
    parts: dict[str, Any] = {
        "word": TextVectorizer(
            preprocessor=norm_text, token_pattern=WORD_PATTERN, ngram_range=(1, 2), min_df=word_min_df, **words
        ),
        "char": TextVectorizer(preprocessor=norm_text, analyzer="char_wb", ngram_range=char_ngrams, min_df=char_min_df, **_TFIDF),
        "thread": TextVectorizer(preprocessor=thread_text, token_pattern=WORD_PATTERN, min_df=thread_min_df, **words),
        "signal": SignalTransformer(),
        "context": ContextTransformer(),
    }
    weights = {"thread": thread_weight} if thread_weight != 1.0 and "thread" in blocks else None
    union = FeatureUnion([(b, parts[b]) for b in BLOCKS if b in blocks], transformer_weights=weights)
    return Pipeline([("prepare", ItemPreparer()), ("union", union)])
