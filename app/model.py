"""The trained model: class scores, the abstain rule, exact explanations and readable reasons.

A fitted scikit-learn Pipeline: the feature pipeline of `app/features.py`, then a
multinomial `LogisticRegression` whose coefficients already carry the calibration
temperature. So for every class the decision value is exactly intercept + the sum of
value * weight over the item's features, and the scores are the softmax of the three.

Scoring reads the pipeline's fitted parts (`app/fast.py`), which a saved model keeps beside
the pipeline as plain arrays: a model loads and scores without importing scikit-learn, and
the pipeline itself is read only when something asks for it (training, a test's check).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from app.fast import FastFeatures, Features, FittedParts, TfidfBlock, split_name
from app.items import LABELS, Item
from app.signals import LexiconHits, registry, signal_spans
from app.text import KEPT, NAME_TOKEN, Prepared, prepare

if TYPE_CHECKING:
    import scipy.sparse as sp
    from sklearn.pipeline import Pipeline

DEFAULT_REASONS = 3
LABEL_TEXT = {"genuine": "genuine", "sales_pitch": "a sales pitch", "spam": "spam or a fake profile"}
_SPAM = LABELS.index("spam")
_MAX_PHRASE_WORDS = 6


@dataclass(frozen=True)
class Thresholds:
    """The abstain rule.

    A spam verdict needs p(spam) >= `spam`; below it the next class is the verdict and the
    item goes to review (a genuine message filed as spam is the costliest error). Any
    verdict whose probability is under `review` goes to review too.
    """

    review: float = 0.5
    spam: float = 0.5

    def __post_init__(self) -> None:
        for name in ("review", "spam"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"thresholds.{name}: expected a number from 0 to 1, got {value!r}")


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    text: str


@dataclass(frozen=True, slots=True)  # made by the thousand per batch
class Reason:
    """One piece of evidence for the verdict and its share of the verdict class's decision value."""

    feature: str
    contribution: float
    description: str
    spans: tuple[Span, ...] = ()


@dataclass(frozen=True)
class Verdict:
    verdict: str
    confidence: float
    scores: dict[str, float]
    needs_review: bool
    reasons: tuple[Reason, ...]
    summary: str
    model_version: str
    source: str = "model"


@dataclass(frozen=True)
class Contribution:
    """One feature's exact share of one class's decision value: value * weight."""

    feature: str
    value: float
    contribution: float
    description: str


@dataclass(frozen=True)
class ClassExplanation:
    label: str
    intercept: float
    decision_value: float
    contributions: tuple[Contribution, ...]


@dataclass(frozen=True)
class Explanation:
    verdict: Verdict
    classes: tuple[ClassExplanation, ...]


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def decide(proba: np.ndarray, thresholds: Thresholds) -> tuple[np.ndarray, np.ndarray]:
    """Verdict indices and needs_review flags for rows of class probabilities."""
    proba = np.atleast_2d(proba)
    order = np.argsort(-proba, axis=1, kind="stable")
    verdict = order[:, 0].copy()
    weak_spam = (verdict == _SPAM) & (proba[:, _SPAM] < thresholds.spam)
    verdict[weak_spam] = order[weak_spam, 1]
    top = proba[np.arange(len(proba)), verdict]
    return verdict, weak_spam | (top < thresholds.review)


def describe(feature: str) -> str:
    """A plain-language description of a feature name from `get_feature_names_out`."""
    block, name = split_name(feature)
    if block in ("signal", "context"):
        signal = registry().signals.get(name)
        return signal.description if signal else name
    if block == "word":
        return f"the words '{name}'" if " " in name else f"the word '{name}'"
    if block == "char":
        return f"the letters '{name.strip()}'"
    if block == "thread":
        return f"the word '{name}' in the sender's earlier messages"
    return feature


@cache
def stopwords() -> frozenset[str]:
    """Function words of the languages the lexicons cover (app/rules/stopwords.toml)."""
    path = Path(__file__).with_name("rules") / "stopwords.toml"
    return frozenset(w.lower() for w in tomllib.loads(path.read_text(encoding="utf-8"))["words"])


@lru_cache(maxsize=200_000)
def is_content(word: str) -> bool:
    """A word a reader can check: letters or digits, not a function word, not a person's name."""
    core = word.strip(".,;:!?¡¿()[]{}\"'`*_-").lower().replace("’", "").replace("'", "")
    if core and all("\u3040" <= ch <= "\u309f" for ch in core):
        return False  # hiragana alone: Japanese particles and verb endings
    return bool(core) and any(ch.isalnum() for ch in core) and core not in stopwords() and core != NAME_TOKEN


NO_READABLE_EVIDENCE = "no phrase or signal in it is evidence by itself; the score rests on how it is written as a whole"


def summarise(label: str, confidence: float, review: bool, reasons: Sequence[Reason], explained: bool = True) -> str:
    """One sentence: the verdict, its confidence, review, and the top reasons (`explained`: reasons were sought)."""
    head = f"Looks like {LABEL_TEXT[label]} ({confidence:.0%})"
    if review:
        head += ", but not sure enough: please review"
    if not reasons:
        # "hi how are you": every word is a function word, so only letters and length speak; say so
        return f"{head}: {NO_READABLE_EVIDENCE}." if explained else head + "."
    return f"{head}: {'; '.join(r.description for r in reasons[:3])}."


class TriageModel:
    """A fitted pipeline (features + logistic regression) with its thresholds and manifest.

    Built from a fitted `pipeline`, or from `serving` bytes (`serving_bytes()`, the fitted
    parts as arrays) with `load_pipeline` to read the pipeline when it is needed.
    """

    def __init__(
        self,
        pipeline: Pipeline | None = None,
        thresholds: Thresholds | None = None,
        manifest: dict[str, Any] | None = None,
        *,
        serving: bytes | None = None,
        load_pipeline: Callable[[], Pipeline] | None = None,
    ):
        self.thresholds = thresholds or Thresholds()
        self.manifest = manifest if manifest is not None else {}
        self._pipeline = pipeline
        self._load_pipeline = load_pipeline
        if pipeline is not None:
            clf = pipeline[-1]
            classes = tuple(clf.classes_)
            parts = FittedParts.from_union(pipeline[-2])
            coef, intercept = clf.coef_, clf.intercept_
        elif serving is not None:
            parts, extra = FittedParts.from_bytes(serving)
            classes, coef, intercept = tuple(extra["classes"].tolist()), extra["coef"], extra["intercept"]
        else:
            raise ValueError("a TriageModel needs a fitted pipeline or its serving bytes")
        if classes != LABELS:
            raise ValueError(f"model classes {list(classes)} are not {list(LABELS)}")
        self.coef = np.asarray(coef, dtype=np.float64)
        self.intercept = np.asarray(intercept, dtype=np.float64)
        self.parts = parts
        self.offsets = parts.offsets
        self.fast = FastFeatures(parts)
        if self.coef.shape != (len(LABELS), self.fast.n_features):
            raise ValueError(f"coefficients of shape {self.coef.shape} do not fit {self.fast.n_features} features")
        text_blocks = {h for h, part in parts.blocks if getattr(part, "source", None) == "norm"}
        self._named_from = min([parts.offsets[b] for b, _ in parts.blocks if b not in text_blocks], default=parts.offsets["_end"])

    @property
    def pipeline(self) -> Pipeline:
        """The fitted scikit-learn pipeline (read from the model file the first time it is asked for)."""
        if self._pipeline is None:
            if self._load_pipeline is None:
                raise ValueError("this model has no pipeline to load")
            self._pipeline = self._load_pipeline()
        return self._pipeline

    def serving_bytes(self) -> bytes:
        """The fitted parts and the classifier as .npz bytes (what `serving=` reads)."""
        return self.parts.to_bytes({"coef": self.coef, "intercept": self.intercept, "classes": np.array(LABELS)})

    @property
    def version(self) -> str:
        return str(self.manifest.get("version", "unversioned"))

    @cached_property
    def feature_names(self) -> np.ndarray:
        return self.parts.feature_names()

    @cached_property
    def _signal_columns(self) -> tuple[np.ndarray, list[str], list[str]]:
        """The signal and context columns after the text blocks: (columns, feature names, descriptions);
        the description is empty for style signals, which count in the score but are never a reason."""
        signals = registry().signals
        at: list[int] = []
        features, descriptions = [], []
        for block, part in self.parts.blocks:
            offset = self.parts.offsets[block]
            if offset < self._named_from or isinstance(part, TfidfBlock):
                continue
            for j, name in enumerate(part.tolist()):
                feature = f"{block}__{name}"
                style = block not in ("signal", "context") or (name in signals and signals[name].style)
                at.append(offset + j)
                features.append(feature)
                descriptions.append("" if style else describe(feature))
        return np.asarray(at, dtype=np.int64), features, descriptions

    def transform(self, items: Sequence[Item], prepared: Sequence[Prepared] | None = None) -> sp.csr_matrix:
        """The feature matrix (equal to the pipeline's features.transform(items))."""
        prepared = prepared if prepared is not None else [prepare(it) for it in items]
        return self.fast.transform(prepared)

    def decision(self, X: sp.csr_matrix) -> np.ndarray:
        """(n, 3) decision values of a feature matrix; equal to the pipeline's decision_function."""
        return np.asarray(X @ self.coef.T) + self.intercept

    def predict_proba(self, items: Sequence[Item]) -> np.ndarray:
        """Class scores, computed block by block as `verdicts` computes them (no joined matrix)."""
        feats = self.fast.features([prepare(it) for it in items])
        return softmax(self.fast.decision(feats, self.coef) + self.intercept)

    # -- readable reasons ----------------------------------------------------------------
    def chunk_reasons(
        self, prepared: Sequence[Prepared], feats: Features, chosen: np.ndarray, n: int
    ) -> list[tuple[Reason, ...]]:
        """Per item, the top `n` pieces of evidence for its chosen class: phrases of the text, named
        signals, the conversation (what the sender wrote before)."""
        if n <= 0:
            return [()] * len(prepared)
        contribution = self.fast.word_contributions(feats, self.coef, chosen)
        runs = WordRuns.find(feats.word_base, feats.word_starts, feats.word_ends, contribution)
        named = self._signal_reasons(feats, chosen, n)
        threads = self._thread_reasons(feats, chosen)
        out: list[tuple[Reason, ...]] = []
        for d, p in enumerate(prepared):
            candidates = _phrases(p, runs, d, n) + named[d]
            if d in threads:
                candidates.append(threads[d])
            # Length and the like (style signals) count in the score and in `explain`, never as a reason:
            # "it is short" tells a reader nothing they can check.
            top = sorted((r for r in candidates if r.contribution > 0), key=_minus_contribution)[:n]
            # Spans only for the signals that made the cut: placing them reads the text's words again.
            out.append(tuple(_with_spans(r, p, feats.lexicon, d) if r.feature.startswith("signal__") else r for r in top))
        return out

    def _signal_reasons(self, feats: Features, chosen: np.ndarray, n: int) -> list[list[Reason]]:
        """Per item, its `n` strongest signal and context columns that push towards its class, strongest first
        (ties in column order)."""
        out: list[list[Reason]] = [[] for _ in range(feats.n_items)]
        at, features, descriptions = self._signal_columns
        dense = [b.dense for b in feats.blocks if b.dense is not None and b.offset >= self._named_from]
        if not len(at) or not feats.n_items:
            return out
        values = np.hstack(dense)  # the blocks in the order of their columns, as `at`
        values *= self.coef[:, at][chosen]
        values[:, [not d for d in descriptions]] = 0.0
        order = np.argsort(-values, axis=1, kind="stable")[:, :n]
        strongest = np.take_along_axis(values, order, axis=1)
        for d in np.flatnonzero(strongest[:, 0] > 0).tolist():
            for j, value in zip(order[d].tolist(), strongest[d].tolist(), strict=True):
                if value <= 0:
                    break
                out[d].append(Reason(features[j], value, descriptions[j]))
        return out

    def _thread_reasons(self, feats: Features, chosen: np.ndarray) -> dict[int, Reason]:
        """The items whose sender's earlier messages push towards their class, with the words that do."""
        out: dict[int, Reason] = {}
        for block, part in self.parts.blocks:
            offset = self.parts.offsets[block]
            if block != "thread" or offset < self._named_from or not isinstance(part, TfidfBlock):
                continue
            rows = next(b for b in feats.blocks if b.offset == offset)
            assert rows.indptr is not None and rows.indices is not None and rows.data is not None
            for d in np.flatnonzero(np.diff(rows.indptr)).tolist():
                lo, hi = rows.indptr[d], rows.indptr[d + 1]
                columns = rows.indices[lo:hi].tolist()
                weights = self.coef[chosen[d], rows.indices[lo:hi] + offset].tolist()
                total, words = 0.0, []
                for j, value, weight in zip(columns, rows.data[lo:hi].tolist(), weights, strict=True):
                    contribution = value * weight
                    total += contribution
                    if contribution > 0 and is_content(part.terms[j]):
                        words.append((contribution, part.terms[j]))
                if total > 0 and words:
                    said = ", ".join(f"'{w}'" for _, w in sorted(words, reverse=True)[:3])
                    out[d] = Reason("thread", total, f"what the sender wrote earlier in this conversation ({said})")
        return out

    def verdicts(self, items: Sequence[Item], n_reasons: int = DEFAULT_REASONS) -> list[Verdict]:
        """Verdict, scores, review flag, reasons and summary for every item, computed as one matrix."""
        if not items:
            return []
        prepared = [prepare(it) for it in items]
        feats = self.fast.features(prepared)
        proba = softmax(self.fast.decision(feats, self.coef) + self.intercept)
        chosen, review = decide(proba, self.thresholds)
        rows, chosen_list, review_list = proba.tolist(), chosen.tolist(), review.tolist()
        all_reasons = self.chunk_reasons(prepared, feats, chosen, n_reasons)
        out = []
        for i in range(len(items)):
            k = chosen_list[i]
            reasons = all_reasons[i]
            label, confidence = LABELS[k], rows[i][k]
            out.append(
                Verdict(
                    verdict=label,
                    confidence=confidence,
                    scores=dict(zip(LABELS, rows[i], strict=True)),
                    needs_review=review_list[i],
                    reasons=reasons,
                    summary=summarise(label, confidence, review_list[i], reasons, n_reasons > 0),
                    model_version=self.version,
                )
            )
        return out

    # -- the exact decomposition ----------------------------------------------------------
    def explain(self, item: Item, n_reasons: int = 5) -> Explanation:
        """For every class: the intercept and every non-zero contribution, summing to its decision value."""
        X = self.transform([item])
        row = X[0]
        decision = self.decision(X)[0]
        names = self.feature_names
        classes = []
        for k, label in enumerate(LABELS):
            contrib = row.data * self.coef[k, row.indices]
            order = np.argsort(-np.abs(contrib), kind="stable")
            parts = tuple(
                Contribution(
                    str(names[row.indices[i]]), float(row.data[i]), float(contrib[i]), describe(str(names[row.indices[i]]))
                )
                for i in order
                if contrib[i] != 0.0
            )
            classes.append(ClassExplanation(label, float(self.intercept[k]), float(decision[k]), parts))
        verdict = self.verdicts([item], n_reasons)[0]
        return Explanation(verdict, tuple(classes))


@dataclass
class WordRuns:
    """Per doc of a chunk, runs of neighbouring words that push towards its class, strongest first.

    A word is strong when its contribution reaches max(0.05, a quarter of its doc's strongest
    word); a run is at most six strong words in a row. Arrays are plain lists: the reasons
    read a few runs per doc.
    """

    doc_runs: list[int]  # doc d's runs are doc_runs[d]:doc_runs[d+1], by descending sum
    run_sum: list[float]
    run_first: list[int]  # index of the run's first word in the word lists
    run_len: list[int]
    starts: list[int]  # each strong word's span in the normalised text
    ends: list[int]
    contribution: list[float]

    @classmethod
    def find(cls, base: np.ndarray, starts: np.ndarray, ends: np.ndarray, contribution: np.ndarray) -> WordRuns:
        n_docs = len(base) - 1
        doc = np.repeat(np.arange(n_docs), np.diff(base))
        best = np.full(n_docs, -np.inf)
        if len(doc):
            np.maximum.at(best, doc, contribution)
        strong = np.flatnonzero(contribution >= np.maximum(0.05, 0.25 * best)[doc]) if len(doc) else np.zeros(0, np.int64)
        sdoc = doc[strong]
        new_group = np.ones(len(strong), dtype=bool)
        new_group[1:] = (np.diff(strong) != 1) | (np.diff(sdoc) != 0)
        group_start = np.maximum.accumulate(np.where(new_group, np.arange(len(strong)), 0)) if len(strong) else strong
        new_run = new_group | ((np.arange(len(strong)) - group_start) % _MAX_PHRASE_WORDS == 0)
        first = np.flatnonzero(new_run)
        values = contribution[strong]
        sums = np.add.reduceat(values, first) if len(first) else np.zeros(0)
        lengths = np.diff(np.append(first, len(strong)))
        rdoc = sdoc[first]
        order = np.lexsort((-sums, rdoc))
        doc_runs = np.searchsorted(rdoc[order], np.arange(n_docs + 1), side="left")
        return cls(
            doc_runs.tolist(),
            sums[order].tolist(),
            first[order].tolist(),
            lengths[order].tolist(),
            starts[strong].tolist(),
            ends[strong].tolist(),
            values.tolist(),
        )


def _phrases(prepared: Prepared, runs: WordRuns, d: int, enough: int = DEFAULT_REASONS) -> list[Reason]:
    """Doc d's runs of strong words as phrases of the received text, function words trimmed off their ends.

    Only the phrases that can still make the top `enough` are spelt out: a run's words all
    push towards the class, so trimming can only lower its sum.
    """
    text, norm = prepared.item.text, prepared.norm
    starts, ends, run_sum = runs.starts, runs.ends, runs.run_sum
    # most texts are one stretch the model read as received: norm[i] is text[i]
    same = len(prepared.sources) == 1 and prepared.sources[0][3] == KEPT
    korean = not text.isascii()
    out: list[Reason] = []
    for r in range(runs.doc_runs[d], runs.doc_runs[d + 1]):
        if len(out) >= enough and run_sum[r] < out[enough - 1].contribution:
            break
        lo = runs.run_first[r]
        hi = lo + runs.run_len[r]
        while lo < hi and not is_content(norm[starts[lo] : ends[lo]]):
            lo += 1
        while lo < hi and not is_content(norm[starts[hi - 1] : ends[hi - 1]]):
            hi -= 1
        if lo == hi:
            continue  # function words alone are no reason a reader can use
        if same:
            start, end = starts[lo], ends[hi - 1]
        else:
            start, end = prepared.start_of(starts[lo]), prepared.end_of(ends[hi - 1] - 1)
        if korean:
            start, end = whole_korean_words(text, start, end)
        shown = " ".join(text[start:end].split())
        if len(shown) < 2:
            continue  # one character (a Chinese one, say) is a fragment to a reader
        what = "the words" if hi - lo > 1 else "the word"
        contribution = sum(runs.contribution[lo:hi])
        out.append(Reason(f"text:{shown.lower()}", contribution, f"{what} '{shown}'", (Span(start, end, text[start:end]),)))
        out.sort(key=_minus_contribution)
    return out


def _minus_contribution(reason: Reason) -> float:
    return -reason.contribution


def _with_spans(reason: Reason, prepared: Prepared, lexicon: LexiconHits | None, d: int) -> Reason:
    """A signal's reason with the spans of the received text where its phrases were found."""
    text = prepared.item.text
    spans = signal_spans(prepared, reason.feature[len("signal__") :], lexicon, d)
    return Reason(reason.feature, reason.contribution, reason.description, tuple(Span(a, b, text[a:b]) for a, b in spans))


def _is_hangul(ch: str) -> bool:
    return "\uac00" <= ch <= "\ud7a3"


def whole_korean_words(text: str, start: int, end: int) -> tuple[int, int]:
    """The span widened to whole Korean words: the model reads Hangul syllable by syllable, a reader by word."""
    while start > 0 and _is_hangul(text[start - 1]) and _is_hangul(text[start]):
        start -= 1
    while end < len(text) and _is_hangul(text[end]) and _is_hangul(text[end - 1]):
        end += 1
    return start, end
