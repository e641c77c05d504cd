"""The trained model: class scores, the abstain rule, exact explanations and readable reasons.

A fitted scikit-learn Pipeline: the feature pipeline of `app/features.py`, then a
multinomial `LogisticRegression` whose coefficients already carry the calibration
temperature. So for every class the decision value is exactly intercept + the sum of
value * weight over the item's features, and the scores are the softmax of the three.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.pipeline import Pipeline

from app.fast import FastFeatures
from app.features import WordEvidence, block_offsets, split_name, word_evidence
from app.items import LABELS, Item
from app.signals import registry, signal_spans
from app.text import NAME_TOKEN, Prepared, prepare

DEFAULT_REASONS = 3
LABEL_TEXT = {"genuine": "genuine", "sales_pitch": "a sales pitch", "spam": "spam or a fake profile"}
_SPAM = LABELS.index("spam")
_MAX_PHRASE_WORDS = 6
FAST_PATH_MAX_ITEMS = 16  # up to this many items, the row-by-row fast path beats the pipeline's transform


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


@dataclass(frozen=True)
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


def is_content(word: str) -> bool:
    """A word a reader can check: letters or digits, not a function word, not a person's name."""
    core = word.strip(".,;:!?¡¿()[]{}\"'`*_-").lower().replace("’", "").replace("'", "")
    return bool(core) and any(ch.isalnum() for ch in core) and core not in stopwords() and core != NAME_TOKEN


def summarise(label: str, confidence: float, review: bool, reasons: Sequence[Reason]) -> str:
    head = f"Looks like {LABEL_TEXT[label]} ({confidence:.0%})"
    if review:
        head += ", but not sure enough: please review"
    if not reasons:
        return head + "."
    return f"{head}: {'; '.join(r.description for r in reasons[:3])}."


@dataclass
class TriageModel:
    """A fitted pipeline (features + logistic regression) with its thresholds and manifest."""

    pipeline: Pipeline
    thresholds: Thresholds = field(default_factory=Thresholds)
    manifest: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        clf = self.pipeline[-1]
        if tuple(clf.classes_) != LABELS:
            raise ValueError(f"model classes {list(clf.classes_)} are not {list(LABELS)}")
        self.features: Pipeline = self.pipeline[:-1]
        self.union = self.features[-1]
        self.coef = np.asarray(clf.coef_, dtype=np.float64)
        self.intercept = np.asarray(clf.intercept_, dtype=np.float64)
        self.offsets = block_offsets(self.union)
        self.fast = FastFeatures(self.union, self.offsets)
        self._char_cache: dict[str, tuple[int, ...]] = {}
        blocks = [name for name, _ in self.union.transformer_list]
        self._block_starts = np.array([self.offsets[b] for b in blocks])
        self._block_names = np.array(blocks, dtype=object)

    @property
    def version(self) -> str:
        return str(self.manifest.get("version", "unversioned"))

    @cached_property
    def feature_names(self) -> np.ndarray:
        return self.features.get_feature_names_out()

    def transform(self, items: Sequence[Item], prepared: Sequence[Prepared] | None = None) -> sp.csr_matrix:
        """The feature matrix (equal to `features.transform(items)`).

        A few items go through the fast path (`app/fast.py`), where scikit-learn's per-call
        overhead would dominate; larger chunks through the fitted union itself.
        """
        prepared = prepared if prepared is not None else [prepare(it) for it in items]
        if len(prepared) <= FAST_PATH_MAX_ITEMS:
            return self.fast.transform(prepared)
        return sp.csr_matrix(self.union.transform(prepared))

    def decision(self, X: sp.csr_matrix) -> np.ndarray:
        """(n, 3) decision values of a feature matrix; equal to the pipeline's decision_function."""
        return np.asarray(X @ self.coef.T) + self.intercept

    def predict_proba(self, items: Sequence[Item]) -> np.ndarray:
        return softmax(self.decision(self.transform(items)))

    # -- readable reasons ----------------------------------------------------------------
    def blocks_of(self, columns: np.ndarray) -> np.ndarray:
        """The block name ('word', 'char', 'thread', 'signal', 'context') of each column index."""
        return self._block_names[np.searchsorted(self._block_starts, columns, side="right") - 1]

    def reasons(self, prepared: Prepared, row: RowView | sp.csr_matrix, k: int, n: int = DEFAULT_REASONS) -> tuple[Reason, ...]:
        """The top `n` pieces of evidence for class k: phrases of the text, named signals, the conversation.

        `prepared` must carry offsets (prepare(item, with_offsets=True)), so phrases point into the text.
        """
        if n <= 0:
            return ()
        item = prepared.item
        weights = self.coef[k]
        candidates: list[Reason] = []
        words = word_evidence(prepared, self.union, row, weights, self.offsets, self._char_cache)
        candidates += _phrases(prepared, words)
        thread_total, thread_words = 0.0, []
        signals = registry().signals
        names = self.feature_names
        for j, value, block in zip(row.indices.tolist(), row.data.tolist(), self.blocks_of(row.indices), strict=True):
            if block in ("word", "char"):
                continue
            contribution = value * weights[j]
            if block in ("signal", "context") and contribution > 0:
                name = split_name(str(names[j]))[1]
                if name in signals and signals[name].style:
                    continue
                candidates.append(Reason(str(names[j]), float(contribution), describe(str(names[j]))))
            elif block == "thread":
                thread_total += contribution
                word = split_name(str(names[j]))[1]
                if contribution > 0 and is_content(word):
                    thread_words.append((contribution, word))
        if thread_total > 0 and thread_words:
            said = ", ".join(f"'{w}'" for _, w in sorted(thread_words, reverse=True)[:3])
            candidates.append(Reason("thread", thread_total, f"what the sender wrote earlier in this conversation ({said})"))
        # Length and the like (style signals) count in the score and in `explain`, never as a reason:
        # "it is short" tells a reader nothing they can check.
        top = sorted((r for r in candidates if r.contribution > 0), key=lambda r: -r.contribution)[:n]
        # Spans only for the signals that made the cut: finding them rescans the text.
        return tuple(
            replace(r, spans=tuple(Span(a, b, item.text[a:b]) for a, b in signal_spans(prepared, split_name(r.feature)[1])))
            if split_name(r.feature)[0] == "signal"
            else r
            for r in top
        )

    def verdicts(self, items: Sequence[Item], n_reasons: int = DEFAULT_REASONS) -> list[Verdict]:
        """Verdict, scores, review flag, reasons and summary for every item, computed as one matrix."""
        if not items:
            return []
        prepared = [prepare(it, with_offsets=n_reasons > 0) for it in items]
        X = self.transform(items, prepared)
        proba = softmax(self.decision(X))
        chosen, review = decide(proba, self.thresholds)
        out = []
        X.sort_indices()
        for i in range(len(items)):
            k = int(chosen[i])
            lo, hi = X.indptr[i], X.indptr[i + 1]  # the row's slices: scipy's X[i] costs more than the reasons
            reasons = self.reasons(prepared[i], RowView(X.indices[lo:hi], X.data[lo:hi]), k, n_reasons)
            label, confidence = LABELS[k], float(proba[i, k])
            out.append(
                Verdict(
                    verdict=label,
                    confidence=confidence,
                    scores={lab: float(p) for lab, p in zip(LABELS, proba[i], strict=True)},
                    needs_review=bool(review[i]),
                    reasons=reasons,
                    summary=summarise(label, confidence, bool(review[i]), reasons),
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


@dataclass(frozen=True)
class RowView:
    """One row of a CSR matrix as its column indices and values (what reasons read)."""

    indices: np.ndarray
    data: np.ndarray


def _phrases(prepared: Prepared, words: list[WordEvidence]) -> list[Reason]:
    """Runs of neighbouring words that pushed towards the class, as phrases of the received text."""
    if not words or prepared.starts is None or prepared.ends is None:
        return []
    best = max(w.contribution for w in words)
    floor = max(0.05, 0.25 * best)
    strong = [w for w in words if w.contribution >= floor]
    runs: list[list[WordEvidence]] = []
    for w in strong:
        gap = prepared.norm[runs[-1][-1].end : w.start] if runs else "x"
        if runs and not gap.strip() and len(runs[-1]) < _MAX_PHRASE_WORDS:
            runs[-1].append(w)
        else:
            runs.append([w])
    text = prepared.item.text
    out = []
    for run in runs:
        while run and not is_content(prepared.norm[run[0].start : run[0].end]):
            run = run[1:]
        while run and not is_content(prepared.norm[run[-1].start : run[-1].end]):
            run = run[:-1]
        if not run:
            continue  # function words alone are no reason a reader can use
        start, end = prepared.starts[run[0].start], prepared.ends[run[-1].end - 1]
        shown = " ".join(text[start:end].split())
        if not shown:
            continue
        what = "the words" if len(run) > 1 else "the word"
        out.append(
            Reason(
                f"text:{shown.lower()}",
                sum(w.contribution for w in run),
                f"{what} '{shown}'",
                (Span(start, end, text[start:end]),),
            )
        )
    return out
