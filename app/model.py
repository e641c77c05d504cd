"""The trained triage model: scores, the abstain rule and exact explanations.

The model is a scikit-learn Pipeline (`ItemFeaturizer` then `LogisticRegression`).
The calibration temperature is folded into the linear step's coefficients, so for
every class the decision value is exactly intercept + sum(value * weight) over the
item's features, and the scores are the softmax of those three values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from app.features import SIGNAL_DESCRIPTIONS, Item, ItemFeaturizer, Prepared, ngram_spans, prepare

LABELS = ("genuine", "sales_pitch", "spam")
DEFAULT_REASONS = 3  # reasons returned with a verdict (the batch output and the summary use three)
LABEL_TEXT = {"genuine": "genuine", "sales_pitch": "a sales pitch", "spam": "spam or a fake profile"}


@dataclass(frozen=True)
class Thresholds:
    """The abstain rule.

    A spam verdict needs p(spam) >= `spam`; below it the next class is the verdict and
    the item goes to review (a genuine note filed as spam is the costliest error).
    Any verdict whose probability is under `review` goes to review too.
    """

    review: float = 0.5
    spam: float = 0.5


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Contribution:
    """One feature's share of one class's decision value: value * weight."""

    feature: str
    value: float
    contribution: float
    description: str
    spans: tuple[Span, ...] = ()


@dataclass(frozen=True)
class ClassExplanation:
    label: str
    intercept: float
    decision_value: float
    contributions: tuple[Contribution, ...]


@dataclass(frozen=True)
class Verdict:
    verdict: str
    confidence: float
    scores: dict[str, float]
    needs_review: bool
    reasons: tuple[Contribution, ...]
    summary: str
    model_version: str


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
    spam = LABELS.index("spam")
    weak_spam = (verdict == spam) & (proba[:, spam] < thresholds.spam)
    verdict[weak_spam] = order[weak_spam, 1]
    top = proba[np.arange(len(proba)), verdict]
    return verdict, weak_spam | (top < thresholds.review)


_SPAM = LABELS.index("spam")


def decide_one(proba: Sequence[float], thresholds: Thresholds) -> tuple[int, bool]:
    """`decide` for one item, on plain floats (the single-item path is latency-bound)."""
    order = sorted(range(len(proba)), key=lambda k: -proba[k])
    if order[0] == _SPAM and proba[_SPAM] < thresholds.spam:
        return order[1], True
    return order[0], proba[order[0]] < thresholds.review


def describe(feature: str) -> str:
    block, _, name = feature.partition(":")
    if block == "signal":
        return SIGNAL_DESCRIPTIONS.get(name, name)
    if block == "word":
        return f"the words '{name}'" if " " in name else f"the word '{name}'"
    if block == "char":
        return f"the letters '{name.strip()}'" + (" at a word edge" if name != name.strip() else "")
    return feature


@dataclass
class TriageModel:
    """A fitted pipeline with its thresholds and manifest; scoring and explanation."""

    pipeline: Pipeline
    thresholds: Thresholds = field(default_factory=Thresholds)
    manifest: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        clf = self.pipeline[-1]
        if tuple(clf.classes_) != LABELS:
            raise ValueError(f"model classes {list(clf.classes_)} are not {list(LABELS)}")
        self.featurizer: ItemFeaturizer = self.pipeline[0]
        self._weights_t = np.ascontiguousarray(clf.coef_.T)  # (features, classes) for fast gathers
        self._intercept = clf.intercept_.astype(np.float64)
        self._names: np.ndarray | None = None

    @property
    def version(self) -> str:
        return str(self.manifest.get("version", "unversioned"))

    @property
    def feature_names(self) -> np.ndarray:
        if self._names is None:
            self._names = self.featurizer.get_feature_names_out()
        return self._names

    # -- scores ---------------------------------------------------------------------
    def decision_values(self, items: Sequence[Item]) -> np.ndarray:
        """(n, 3) decision values through the sklearn pipeline (the batch path)."""
        return np.asarray(self.pipeline.decision_function(list(items)))

    def predict_proba(self, items: Sequence[Item]) -> np.ndarray:
        return softmax(self.decision_values(items))

    def _row(self, item: Item, with_offsets: bool = False) -> tuple[Prepared, np.ndarray, np.ndarray, np.ndarray]:
        prepared = prepare(item, with_offsets=with_offsets)
        idx, vals = self.featurizer.row(prepared)
        decision = vals @ self._weights_t[idx] + self._intercept
        return prepared, idx, vals, decision

    def score_item(self, item: Item, n_reasons: int = DEFAULT_REASONS) -> Verdict:
        """Verdict, scores and top reasons for one item (the single-item fast path)."""
        prepared, idx, vals, decision = self._row(item, with_offsets=n_reasons > 0)
        return self._verdict(prepared, idx, vals, decision, n_reasons)

    def score_items(self, items: Sequence[Item], n_reasons: int = DEFAULT_REASONS) -> list[Verdict]:
        return [self.score_item(it, n_reasons) for it in items]

    def _verdict(self, prepared: Prepared, idx: np.ndarray, vals: np.ndarray, decision: np.ndarray, n_reasons: int) -> Verdict:
        proba = softmax(decision)
        k, needs_review = decide_one(proba.tolist(), self.thresholds)
        reasons: tuple[Contribution, ...] = ()
        if n_reasons > 0:
            contrib = vals * self._weights_t[idx, k]
            top = [i for i in np.argsort(-contrib, kind="stable")[:n_reasons] if contrib[i] > 0]
            reasons = tuple(self._contribution(prepared, int(idx[i]), float(vals[i]), float(contrib[i])) for i in top)
        label = LABELS[k]
        scores = {lab: float(p) for lab, p in zip(LABELS, proba, strict=True)}
        return Verdict(
            label,
            float(proba[k]),
            scores,
            needs_review,
            reasons,
            self._summary(label, float(proba[k]), needs_review, reasons),
            self.version,
        )

    def _contribution(self, prepared: Prepared, j: int, value: float, contribution: float) -> Contribution:
        name = str(self.feature_names[j])
        spans: tuple[Span, ...] = ()
        if not name.startswith("signal:") and prepared.starts is not None:
            text = prepared.item.text
            spans = tuple(Span(a, b, text[a:b]) for a, b in ngram_spans(prepared, name))
        return Contribution(name, value, contribution, describe(name), spans)

    @staticmethod
    def _summary(label: str, confidence: float, review: bool, reasons: Sequence[Contribution]) -> str:
        head = f"Looks like {LABEL_TEXT[label]} ({confidence:.0%})"
        if review:
            head += ", but not sure enough: please review"
        if not reasons:
            return head + "."
        evidence = []
        for r in reasons[:3]:
            if r.feature.startswith("signal:"):
                evidence.append(r.description.split(" (")[0])
            else:
                shown = r.spans[0].text if r.spans else r.feature.split(":", 1)[1].strip()
                evidence.append(f"'{shown}'")
        return f"{head}: {'; '.join(evidence)}."

    # -- exact explanation ------------------------------------------------------------
    def explain(self, item: Item) -> Explanation:
        """For every class: intercept and every non-zero contribution, summing to its decision value."""
        prepared, idx, vals, decision = self._row(item, with_offsets=True)
        verdict = self._verdict(prepared, idx, vals, decision, n_reasons=5)
        classes = []
        for k, label in enumerate(LABELS):
            contrib = vals * self._weights_t[idx, k]
            order = np.argsort(-np.abs(contrib), kind="stable")
            parts = tuple(
                self._contribution(prepared, int(idx[i]), float(vals[i]), float(contrib[i])) for i in order if contrib[i] != 0.0
            )
            classes.append(ClassExplanation(label, float(self._intercept[k]), float(decision[k]), parts))
        return Explanation(verdict, tuple(classes))
