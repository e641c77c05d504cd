"""The fitted feature union computed row by row from its own fitted parts, for serving.

`FastFeatures` runs each block's own analyzer (`build_analyzer()`, so the same
preprocessor and tokens), looks n-grams up in the fitted `vocabulary_`, applies the fitted
`idf_`, sublinear tf and l2 norm as `TfidfVectorizer` does, and asks the signal and context
steps for their rows. It skips scikit-learn's per-call validation and dispatch, which cost
more than the features themselves for one item. It is not a second feature definition:
everything it computes comes from the fitted steps, and tests/test_fast.py checks it equals
`pipeline.transform` to 1e-12.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion

from app.features import block_offsets
from app.text import Prepared


class FastFeatures:
    """`union.transform(prepared)` for a fitted FeatureUnion of TfidfVectorizers and row-wise steps."""

    def __init__(self, union: FeatureUnion, offsets: dict[str, int] | None = None):
        """`offsets` (block name -> first column, as `block_offsets` gives them) when the caller has them."""
        offsets = offsets if offsets is not None else block_offsets(union)
        self.parts: list[tuple[str, int, Any]] = []
        for name, step in union.transformer_list:
            offset = offsets[name]
            if isinstance(step, TfidfVectorizer):
                if step.norm not in ("l2", None) or step.binary or not step.use_idf:
                    raise ValueError("FastFeatures handles TfidfVectorizer(norm='l2' or None, use_idf=True, binary=False)")
                tfidf = (step.build_analyzer(), step.vocabulary_, np.asarray(step.idf_), step.sublinear_tf, step.norm)
                self.parts.append(("tfidf", offset, tfidf))
            else:
                self.parts.append(("rows", offset, step))
        self.n_features = offsets["_end"]

    def transform(self, prepared: Sequence[Prepared]) -> sp.csr_matrix:
        indptr = [0]
        indices: list[int] = []
        data: list[float] = []
        for p in prepared:
            for kind, offset, part in self.parts:
                if kind == "tfidf":
                    cols, vals = _tfidf_row(p, *part)
                    indices.extend(c + offset for c in cols)
                    data.extend(vals)
                else:
                    for j, v in enumerate(part.row(p)):
                        if v != 0.0:
                            indices.append(offset + j)
                            data.append(v)
            indptr.append(len(indices))
        return sp.csr_matrix(
            (np.asarray(data, dtype=np.float64), np.asarray(indices, dtype=np.int64), np.asarray(indptr, dtype=np.int64)),
            shape=(len(prepared), self.n_features),
        )


def _tfidf_row(
    p: Prepared, analyze: Any, vocabulary: dict[str, int], idf: np.ndarray, sublinear: bool, norm: str | None
) -> tuple[list[int], np.ndarray]:
    counts = Counter(j for j in map(vocabulary.get, analyze(p)) if j is not None)
    if not counts:
        return [], np.zeros(0)
    cols = sorted(counts)
    tf = np.fromiter((counts[c] for c in cols), dtype=np.float64, count=len(cols))
    if sublinear:
        tf = np.log(tf) + 1.0
    vals = tf * idf[cols]
    if norm == "l2":
        vals /= np.sqrt(np.dot(vals, vals))
    return cols, vals
