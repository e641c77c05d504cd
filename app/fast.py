"""The fitted feature union computed from its own fitted parts, for serving.

`FittedParts` holds what the fitted steps learnt (each TF-IDF block's `vocabulary_` in
column order, `idf_`, n-gram range and settings; the signal and context steps' `names_`)
as plain arrays. It is taken from a fitted `FeatureUnion` (`FittedParts.from_union`) and
saved beside the model as an `.npz` that loads without pickle and without importing
scikit-learn. `FastFeatures` computes `union.transform` from it in compiled loops
(`app/kernels.py`) over a whole chunk of items at once, and keeps which word of the text
each n-gram hit came from, for readable reasons. It is not a second feature definition:
tokens, n-grams and weights all come from the fitted steps, and tests/test_fast.py holds
it equal to `pipeline.transform` to 1e-12.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from app import kernels
from app.codes import CLASSES, packed_codes, text_codes
from app.context import context_rows
from app.signals import LexiconHits, signal_rows
from app.text import WORD_PATTERN, Prepared, thread_text

if TYPE_CHECKING:  # scipy is imported where a matrix is made: scoring needs none (a quarter second at start-up)
    import scipy.sparse as sp

# Bump when a change here or in app/features.py, app/text.py, app/signals.py, app/context.py or
# app/rules changes what a fitted pipeline computes: saved models record it and loading refuses a mismatch.
FEATURES_VERSION = 23
_SOURCES = {"norm": lambda p: p.norm, "thread": thread_text}


def split_name(feature: str) -> tuple[str, str]:
    """'word__bumping this' -> ('word', 'bumping this')."""
    block, _, name = feature.partition("__")
    return block, name


@dataclass
class TfidfBlock:
    """One fitted TF-IDF block: its terms in column order and how it reads a text."""

    name: str
    terms: list[str]
    idf: np.ndarray
    analyzer: str  # "word" (token_pattern n-grams) or "char_wb"
    ngram_range: tuple[int, int]
    source: str  # "norm" (the item's normalised text) or "thread" (the sender's earlier messages)
    sublinear: bool
    l2: bool
    l2_with_unseen: bool = False  # n-grams outside the vocabulary count in the norm (TextVectorizer)
    weight: float = 1.0  # the union's transformer_weights[name]: every value of the block is multiplied by it

    pairs: np.ndarray | None = None  # (3, n): each bigram's first word, second word and column

    def __post_init__(self) -> None:
        codes, self.tstarts = packed_codes(self.terms)
        self.tcodes = codes.copy()  # owned and writable: kept for the model's life
        self.slots, self.hashes = kernels.build_term_table(self.tcodes, self.tstarts)
        self.bigrams = self.analyzer == "word" and self.ngram_range[1] >= 2
        if self.pairs is None:
            self.pairs = self._find_pairs()
        self.word_cache = kernels.new_word_cache() if self.analyzer == "char_wb" else ()
        self.lock = threading.Lock()  # the word cache is shared: one chunk at a time (the server scores in threads)
        first, second, columns = self.pairs
        slots, self.pair_keys = kernels.build_pair_table(first, second, len(self.terms))
        self.pair_slots = np.where(slots >= 0, columns[np.maximum(slots, 0)], -1) if len(columns) else slots
        self.unseen_idf = float(np.max(self.idf)) if len(self.idf) else 1.0  # as TextVectorizer.unseen_idf

    def _find_pairs(self) -> np.ndarray:
        """Bigram terms as (first word's column, second word's column, own column)."""
        if not self.bigrams:
            return np.zeros((3, 0), dtype=np.int64)
        index = {t: i for i, t in enumerate(self.terms)}
        rows = []
        for i, term in enumerate(self.terms):
            if " " in term:
                a, b = term.split(" ")
                if a not in index or b not in index:
                    raise ValueError(f"{self.name}: bigram {term!r} has a word outside the vocabulary")
                rows.append((index[a], index[b], i))
        return np.asarray(rows, dtype=np.int64).reshape(-1, 3).T.copy()

    def hits(self, codes: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, ...]:
        """(doc_ptr, column, owner word, share) of every vocabulary hit of every doc, and each doc's unseen n-grams."""
        if self.analyzer == "char_wb":
            lo, hi = self.ngram_range
            with self.lock:
                doc_ptr, cols, owners = kernels.char_wb_occurrences(
                    codes, starts, CLASSES, lo, hi, self.slots, self.hashes, self.tcodes, self.tstarts, *self.word_cache
                )
            return doc_ptr, cols, owners, np.ones(len(cols)), np.zeros(len(starts) - 1)
        return kernels.word_occurrences(
            codes,
            starts,
            CLASSES,
            self.bigrams,
            self.slots,
            self.hashes,
            self.tcodes,
            self.tstarts,
            self.pair_slots,
            self.pair_keys,
            len(self.terms),
        )


@dataclass
class BlockHits:
    """One TF-IDF block's rows and its hits, kept to split contributions over words."""

    name: str
    doc_ptr: np.ndarray
    owners: np.ndarray
    shares: np.ndarray
    entry_of: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray


@dataclass
class Block:
    """One block's rows: TF-IDF blocks as CSR arrays, signal and context blocks as a dense array."""

    offset: int  # its first column
    width: int
    dense: np.ndarray | None = None
    indptr: np.ndarray | None = None
    indices: np.ndarray | None = None
    data: np.ndarray | None = None

    def csr(self, n: int) -> sp.csr_matrix:
        import scipy.sparse as sp

        if self.dense is not None:
            return sp.csr_matrix(self.dense)
        return sp.csr_matrix((self.data, self.indices, self.indptr), shape=(n, self.width))

    def entries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, column in the whole matrix, value) of every non-zero entry."""
        if self.dense is not None:
            rows, cols = np.nonzero(self.dense)
            return rows, cols + self.offset, self.dense[rows, cols]
        assert self.indptr is not None and self.indices is not None and self.data is not None
        rows = np.repeat(np.arange(len(self.indptr) - 1), np.diff(self.indptr))
        return rows, self.indices + self.offset, self.data


@dataclass
class Features:
    """A chunk's features, block by block, and what reasons need to split them over the words of each text.

    Kept as plain arrays: scipy's per-matrix checks cost more than the features for one item.
    """

    blocks: list[Block]
    n_features: int
    hits: list[BlockHits]
    word_base: np.ndarray  # doc d's words are word_base[d]:word_base[d+1] of word_starts/word_ends
    word_starts: np.ndarray  # in the normalised text
    word_ends: np.ndarray
    lexicon: LexiconHits | None = None  # the lexicon phrases found, when the union has a signal block

    @property
    def n_items(self) -> int:
        return len(self.word_base) - 1

    @property
    def X(self) -> sp.csr_matrix:
        """The whole (items, features) matrix."""
        import scipy.sparse as sp

        parts = [b.csr(self.n_items) for b in self.blocks]
        if not parts:
            return sp.csr_matrix((self.n_items, 0))
        return sp.csr_matrix(sp.hstack(parts, format="csr"))


class FittedParts:
    """The fitted union's parts as plain data: TF-IDF blocks in order, and the row-wise steps' names."""

    def __init__(self, blocks: list[tuple[str, Any]]):
        self.blocks = blocks  # (name, TfidfBlock) or (name, array of signal or context names)
        self.offsets: dict[str, int] = {}
        start = 0
        for name, part in blocks:
            self.offsets[name] = start
            start += len(part.terms) if isinstance(part, TfidfBlock) else len(part)
        self.offsets["_end"] = start

    @classmethod
    def from_union(cls, union: Any) -> FittedParts:
        """Read a fitted FeatureUnion (app/features.py) without copying its feature definitions."""
        blocks: list[tuple[str, Any]] = []
        weights = union.transformer_weights or {}
        for name, step in union.transformer_list:
            if name in weights and not hasattr(step, "vocabulary_"):
                raise ValueError(f"{name}: the fast path weighs TF-IDF blocks only")
            if hasattr(step, "vocabulary_"):
                analyzer = step.analyzer
                if analyzer not in ("word", "char_wb") or (analyzer == "word" and step.token_pattern != WORD_PATTERN):
                    raise ValueError(f"{name}: the fast path reads word blocks with WORD_PATTERN and char_wb blocks")
                with_unseen = bool(getattr(step, "l2_with_unseen", False))
                if step.norm not in ("l2", None) or step.binary or not step.use_idf or step.lowercase:
                    raise ValueError(
                        f"{name}: the fast path handles TfidfVectorizer(norm='l2' or None, use_idf, lowercase=False)"
                    )
                source = {"norm_text": "norm", "thread_text": "thread"}[step.preprocessor.__name__]
                terms = sorted(step.vocabulary_, key=step.vocabulary_.__getitem__)
                idf = np.asarray(step.idf_, dtype=np.float64)
                if with_unseen and (analyzer != "word" or step.norm is not None):
                    raise ValueError(f"{name}: the fast path counts unseen words of word blocks with norm=None")
                settings = (analyzer, tuple(step.ngram_range), source, step.sublinear_tf, step.norm == "l2", with_unseen)
                tb = TfidfBlock(name, terms, idf, *settings, float(weights.get(name, 1.0)))
                blocks.append((name, tb))
            else:
                blocks.append((name, np.asarray(step.names_, dtype=object)))
        return cls(blocks)

    # -- the .npz form -------------------------------------------------------------------
    def to_bytes(self, extra: dict[str, np.ndarray] | None = None) -> bytes:
        """The parts (and `extra` arrays, such as the classifier's) as .npz bytes: plain arrays, no pickle."""
        arrays: dict[str, np.ndarray] = {f"extra.{k}": np.asarray(v) for k, v in (extra or {}).items()}
        arrays["blocks"] = np.array([name for name, _ in self.blocks])
        for name, part in self.blocks:
            if isinstance(part, TfidfBlock):
                # the terms joined, and each one's length: any character may be in a term (NUL too)
                arrays[f"{name}.terms"] = np.frombuffer("".join(part.terms).encode("utf-8", "surrogatepass"), dtype=np.uint8)
                arrays[f"{name}.lengths"] = np.array([len(t) for t in part.terms], dtype=np.int32)
                arrays[f"{name}.idf"] = part.idf
                arrays[f"{name}.pairs"] = np.asarray(part.pairs, dtype=np.int32)  # columns fit: half the file
                arrays[f"{name}.settings"] = np.array(
                    [
                        part.analyzer,
                        str(part.ngram_range[0]),
                        str(part.ngram_range[1]),
                        part.source,
                        str(int(part.sublinear)),
                        str(int(part.l2)),
                        str(int(part.l2_with_unseen)),
                        repr(part.weight),
                    ]
                )
            else:
                arrays[f"{name}.names"] = np.array([str(n) for n in part])
        out = io.BytesIO()
        np.savez_compressed(out, **arrays)  # type: ignore[arg-type]
        return out.getvalue()

    @classmethod
    def from_bytes(cls, raw: bytes) -> tuple[FittedParts, dict[str, np.ndarray]]:
        """The parts and the extra arrays saved with them."""
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            extra = {k.removeprefix("extra."): np.asarray(z[k]) for k in z.files if k.startswith("extra.")}
            blocks: list[tuple[str, Any]] = []
            for name in z["blocks"].tolist():
                if f"{name}.terms" in z:
                    packed = z[f"{name}.terms"].tobytes().decode("utf-8", "surrogatepass")
                    ends = np.cumsum(z[f"{name}.lengths"], dtype=np.int64).tolist()
                    if (ends[-1] if ends else 0) != len(packed):
                        raise ValueError(f"{name}: the term lengths do not add up to the terms")
                    terms = [packed[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]
                    # older files end before the unseen-words flag (features v14) or the block's weight (v22)
                    analyzer, lo, hi, source, sublinear, l2, *rest = z[f"{name}.settings"].tolist()
                    unseen = rest[:1]
                    weight = float(rest[1]) if len(rest) > 1 else 1.0
                    idf = np.asarray(z[f"{name}.idf"], dtype=np.float64)
                    pairs = np.asarray(z[f"{name}.pairs"], dtype=np.int64)
                    if (
                        len(idf) != len(terms)
                        or pairs.shape[0] != 3
                        or (pairs.size and not 0 <= pairs.min() <= pairs.max() < len(terms))
                    ):
                        raise ValueError(f"{name}: idf or bigram pairs do not fit its {len(terms)} terms")
                    settings = (analyzer, (int(lo), int(hi)), source, sublinear == "1", l2 == "1", unseen == ["1"], weight)
                    block = TfidfBlock(name, terms, idf, *settings, pairs)
                    blocks.append((name, block))
                else:
                    blocks.append((name, np.asarray(z[f"{name}.names"].tolist(), dtype=object)))
        return cls(blocks), extra

    def feature_names(self, start: int = 0) -> np.ndarray:
        """As the union's `get_feature_names_out`: 'block__term' (from column `start` on)."""
        names: list[str] = []
        for name, part in self.blocks:
            terms = part.terms if isinstance(part, TfidfBlock) else part
            skip = max(start - self.offsets[name], 0)
            if skip < len(terms):
                names += [f"{name}__{t}" for t in terms[skip:]]
        return np.asarray(names, dtype=object)


class FastFeatures:
    """`union.transform(prepared)` from fitted parts, a chunk at a time, with the hits behind it."""

    def __init__(self, parts: FittedParts):
        self.parts = parts
        self.n_features = parts.offsets["_end"]

    def features(self, prepared: Sequence[Prepared]) -> Features:
        texts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        blocks: list[Block] = []
        lexicon = None
        hits: list[BlockHits] = []
        norm_codes = norm_starts = None
        for name, part in self.parts.blocks:
            offset = self.parts.offsets[name]
            if isinstance(part, TfidfBlock):
                if part.source not in texts:
                    texts[part.source] = text_codes([_SOURCES[part.source](p) for p in prepared])
                codes, starts = texts[part.source]
                doc_ptr, cols, owners, shares, unseen = part.hits(codes, starts)
                unseen_mass = unseen * part.unseen_idf**2 if part.l2_with_unseen else np.zeros(len(unseen))
                indptr, indices, data, entry_of = kernels.tfidf(
                    doc_ptr, cols, shares, part.idf, len(part.terms), part.sublinear, part.l2 or part.l2_with_unseen, unseen_mass
                )
                if part.weight != 1.0:
                    data *= part.weight
                blocks.append(Block(offset, len(part.terms), indptr=indptr, indices=indices, data=data))
                if part.source == "norm":
                    hits.append(BlockHits(name, doc_ptr, owners, shares, entry_of, indptr, indices, data))
                    norm_codes, norm_starts = codes, starts
            elif name == "signal":
                lexicon = LexiconHits.find([p.raw for p in prepared])
                blocks.append(Block(offset, len(part), dense=signal_rows(prepared, part, lexicon)))
            else:
                blocks.append(Block(offset, len(part), dense=context_rows([p.item for p in prepared], part)))
        if norm_codes is None or norm_starts is None:
            norm_codes, norm_starts = text_codes([p.norm for p in prepared])
        word_base, word_starts, word_ends = kernels.word_spans(norm_codes, norm_starts, CLASSES)
        return Features(blocks, self.n_features, hits, word_base, word_starts, word_ends, lexicon)

    def transform(self, prepared: Sequence[Prepared]) -> sp.csr_matrix:
        return self.features(prepared).X

    def decision(self, feats: Features, coef: np.ndarray) -> np.ndarray:
        """(items, classes) sums of value * weight, block by block (no need to join the blocks)."""
        out = np.zeros((feats.n_items, coef.shape[0]))
        for b in feats.blocks:
            if b.dense is not None:
                out += b.dense @ coef[:, b.offset : b.offset + b.width].T
            else:
                kernels.add_decision(b.indptr, b.indices, b.data, coef, b.offset, out)
        return out

    def word_contributions(self, feats: Features, coef: np.ndarray, chosen: np.ndarray) -> np.ndarray:
        """Each word's share of the chosen class's decision value, from the word and character n-grams.

        Indexed like `feats.word_starts`; per doc, the words add up to those blocks' total contribution.
        """
        total = np.zeros(len(feats.word_starts))
        chosen = np.asarray(chosen, dtype=np.int64)
        for h in feats.hits:
            total += kernels.word_contributions(
                h.doc_ptr, h.owners, h.shares, h.entry_of, h.data, h.indices, coef, chosen,
                self.parts.offsets[h.name], feats.word_base, len(total),
            )  # fmt: skip
        return total
