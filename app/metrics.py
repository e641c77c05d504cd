"""Classification metrics shared by training, evaluation and the retraining gate."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from app.model import LABELS, Thresholds, decide


def brier_score(proba: np.ndarray, y: np.ndarray) -> float:
    """Multi-class Brier score: mean squared distance to the one-hot truth (0 best, 2 worst)."""
    onehot = np.eye(len(LABELS))[y]
    return float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))


def reliability_table(proba: np.ndarray, y: np.ndarray, bins: int = 10) -> list[dict[str, Any]]:
    """Confidence of the top class against its accuracy, per confidence bin."""
    top = proba.max(axis=1)
    hit = proba.argmax(axis=1) == y
    edges = np.linspace(1 / len(LABELS), 1.0, bins + 1)
    rows = []
    for lo, hi in itertools.pairwise(edges):
        mask = (top >= lo) & ((top < hi) | (hi == 1.0))
        if mask.any():
            rows.append(
                {
                    "bin": f"{lo:.2f}-{hi:.2f}",
                    "count": int(mask.sum()),
                    "mean_confidence": round(float(top[mask].mean()), 4),
                    "accuracy": round(float(hit[mask].mean()), 4),
                }
            )
    return rows


def label_indices(labels: Sequence[str]) -> np.ndarray:
    return np.array([LABELS.index(lab) for lab in labels])


def classification_report(proba: np.ndarray, y: np.ndarray, thresholds: Thresholds) -> dict[str, Any]:
    """Per-class P/R/F1, macro-F1, confusion, genuine misfiling rates, calibration, review share."""
    pred, review = decide(proba, thresholds)
    p, r, f, support = precision_recall_fscore_support(y, pred, labels=range(len(LABELS)), zero_division=0)
    cm = confusion_matrix(y, pred, labels=range(len(LABELS)))
    genuine = y == LABELS.index("genuine")
    n_gen = max(int(genuine.sum()), 1)
    confident = ~review
    report = {
        "n": len(y),
        "per_class": {
            lab: {
                "precision": round(float(p[k]), 4),
                "recall": round(float(r[k]), 4),
                "f1": round(float(f[k]), 4),
                "support": int(support[k]),
            }
            for k, lab in enumerate(LABELS)
        },
        "macro_f1": round(float(f.mean()), 4),
        "accuracy": round(float((pred == y).mean()), 4),
        "confusion_matrix": {"labels": list(LABELS), "rows_true_cols_pred": cm.tolist()},
        "genuine_as_spam_rate": round(float(((pred == LABELS.index("spam")) & genuine).sum() / n_gen), 4),
        "genuine_as_sales_pitch_rate": round(float(((pred == LABELS.index("sales_pitch")) & genuine).sum() / n_gen), 4),
        "needs_review_rate": round(float(review.mean()), 4),
        "accuracy_when_confident": round(float((pred[confident] == y[confident]).mean()), 4) if confident.any() else None,
        "brier": round(brier_score(proba, y), 4),
        "log_loss": round(float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, 1)))), 4),
        "reliability": reliability_table(proba, y),
    }
    return report


def format_report(name: str, report: dict[str, Any]) -> str:
    """A report as a few readable lines."""
    lines = [
        f"{name}: n={report['n']}  macro-F1 {report['macro_f1']:.3f}  accuracy {report['accuracy']:.3f}  "
        f"brier {report['brier']:.3f}  review {report['needs_review_rate']:.1%}"
    ]
    for lab, m in report["per_class"].items():
        lines.append(f"  {lab:<12} P {m['precision']:.3f}  R {m['recall']:.3f}  F1 {m['f1']:.3f}  n={m['support']}")
    cm = report["confusion_matrix"]["rows_true_cols_pred"]
    lines.append("  confusion (rows true, cols pred: " + ", ".join(LABELS) + ")")
    lines += [f"    {lab:<12} " + " ".join(f"{v:5d}" for v in row) for lab, row in zip(LABELS, cm, strict=True)]
    lines.append(
        f"  genuine filed as spam {report['genuine_as_spam_rate']:.2%}, as sales_pitch "
        f"{report['genuine_as_sales_pitch_rate']:.2%}"
    )
    lines.append(
        "  reliability: "
        + "  ".join(
            f"{b['bin']}: conf {b['mean_confidence']:.2f} acc {b['accuracy']:.2f} (n={b['count']})" for b in report["reliability"]
        )
    )
    return "\n".join(lines)


HEADLINE_KEYS = (
    "n",
    "macro_f1",
    "accuracy",
    "genuine_as_spam_rate",
    "genuine_as_sales_pitch_rate",
    "needs_review_rate",
    "brier",
    "log_loss",
)


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """The figures of a report worth keeping in a manifest: the headline numbers and per-class F1."""
    return {k: report[k] for k in HEADLINE_KEYS if k in report} | {
        "per_class_f1": {k: v["f1"] for k, v in report["per_class"].items()}
    }


def _confusion_by_group(y: np.ndarray, pred: np.ndarray, group_of: np.ndarray, n_groups: int) -> np.ndarray:
    """(groups, 3 classes x [tp, fp, fn]) counts of each group's rows."""
    out = np.zeros((n_groups, len(LABELS) * 3))
    for k in range(len(LABELS)):
        for j, hit in enumerate(((y == k) & (pred == k), (y != k) & (pred == k), (y == k) & (pred != k))):
            np.add.at(out[:, 3 * k + j], group_of, hit.astype(float))
    return out


def _macro_f1_of(counts: np.ndarray) -> np.ndarray:
    """Macro-F1 of each row of (resamples, 3 classes x [tp, fp, fn]) counts."""
    tp, fp, fn = counts[:, 0::3], counts[:, 1::3], counts[:, 2::3]
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros_like(denom), where=denom > 0).mean(axis=1)


def chance_better(
    y: np.ndarray,
    current: np.ndarray,
    candidate: np.ndarray,
    groups: Sequence[str],
    n_resamples: int = 2000,
    seed: int = 0,
) -> float:
    """Share of paired bootstrap resamples in which the candidate's macro-F1 beats the current model's.

    Whole groups (a conversation, an inbox) are drawn together, since rows of one thread rise and
    fall together; both models are judged on the same draw, so only their difference varies.
    Resamples are drawn in blocks, so memory stays at a block times the number of groups.
    """
    _, group_of = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    n_groups = int(group_of.max()) + 1 if len(group_of) else 0
    if n_groups == 0:
        return 0.0
    per_model = [_confusion_by_group(y, pred, group_of, n_groups) for pred in (current, candidate)]
    rng = np.random.default_rng(seed)
    wins = 0
    for start in range(0, n_resamples, 250):
        block = min(250, n_resamples - start)
        times_drawn = np.zeros((block, n_groups))
        np.add.at(times_drawn, (np.repeat(np.arange(block), n_groups), rng.integers(0, n_groups, block * n_groups)), 1.0)
        gain = _macro_f1_of(times_drawn @ per_model[1]) - _macro_f1_of(times_drawn @ per_model[0])
        wins += int(np.sum(gain > 1e-12))
    return wins / n_resamples
