"""Learning from a user's own labelled rows: how much they weigh, chosen by cross-validation.

A user's rows (labels files, corrections from the page or `/v1/feedback`) are few beside the
corpus: at weight 1, 216 rows among ~40,000 training rows change nothing. So they get a sample
weight, chosen among a few *shares* (the user rows' total weight as a share of the corpus's)
by cross-validation on the user's rows alone, folds grouped by conversation (or sender) so
that no thread leaks. The corpus and the earlier user rows are in every training fold; only
user rows are scored. The same out-of-fold scores then judge the candidate in the gate.

Why a weight and not a separate user layer on top of the base scores: on the learning curve
(`scripts/bench_adaptation.py`) the weighted refit gained as much or more per label, and it
keeps one model, one set of features and exact explanations (see the model card).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold

from app.corpus import Example
from app.metrics import classification_report
from app.model import LABELS, Thresholds, softmax
from app.train import DEFAULT_PARAMS, make_pipeline, training_rows, training_rows_with_origin
from app.workers import DEFAULT_TRAIN_JOBS, parallel_map

USER_SHARES = (0.01, 0.03, 0.1, 0.3, 1.0)  # the user rows' total weight as a share of the corpus's, tried in turn
SHARE_TOLERANCE = 0.01  # macro-F1 a smaller share may trail the best by and still be chosen
MAX_USER_WEIGHT = 200.0  # one user row never counts for more than this many corpus rows
MAX_FOLDS = 3  # grouped folds on the user rows: each fold refits the features on the whole corpus
MIN_ROWS_TO_CHOOSE = 12  # fewer rows than this: the middle share, no cross-validation


def user_weight(share: float, n_user: float, corpus_weight: float) -> float:
    """The per-row weight that gives `n_user` rows `share` of the corpus's total weight (capped)."""
    if n_user <= 0:
        return 1.0
    return float(min(MAX_USER_WEIGHT, max(1.0, share * corpus_weight / n_user)))


@dataclass
class UserFit:
    """The chosen weight, the out-of-fold probabilities of the user rows at every weight, and the scores."""

    weight: float
    share: float
    oof: dict[float, np.ndarray]  # share -> (n_user, 3) probabilities, each row scored by a fold that never saw its group
    scores: dict[float, dict[str, float]]  # share -> macro-F1, genuine-as-spam rate
    folds: int

    @property
    def chosen_oof(self) -> np.ndarray:
        return self.oof[self.share]


def _fold_task(
    corpus: Sequence[Example],
    extra: Sequence[Example],
    user: Sequence[Example],
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    params: dict[str, Any],
    shares: Sequence[float],
    temperature: float,
) -> dict[float, np.ndarray]:
    """Fit the features once on this fold's training rows, then one classifier per share."""
    train_user = [user[i] for i in train_idx]
    items, labels, weights, is_user = training_rows_with_origin([*corpus, *train_user], {**params, "user_weight": 1.0}, extra)
    pipe = make_pipeline(params)
    features, clf_template = pipe[:-1], pipe[-1]
    X = features.fit_transform(items, labels)
    held = [user[i].item for i in test_idx]
    X_held = features.transform(held)
    out: dict[float, np.ndarray] = {}
    corpus_weight = float(weights[~is_user].sum())
    for share in shares:
        w = weights.copy()
        w[is_user] = user_weight(share, float(is_user.sum()), corpus_weight)
        clf = LogisticRegression(**clf_template.get_params()).fit(X, labels, sample_weight=w)
        decision = np.full((len(held), len(LABELS)), -1e3)
        decision[:, [LABELS.index(c) for c in clf.classes_]] = clf.decision_function(X_held)
        out[share] = softmax(decision / temperature)
    return out


def choose_user_weight(
    corpus: Sequence[Example],
    extra: Sequence[Example],
    user: Sequence[Example],
    params: dict[str, Any],
    thresholds: Thresholds,
    temperature: float = 1.0,
    shares: Sequence[float] = USER_SHARES,
    n_jobs: int = DEFAULT_TRAIN_JOBS,
) -> UserFit:
    """Cross-validate every share on the user rows (grouped folds) and keep the best macro-F1.

    The smallest share within SHARE_TOLERANCE of the best is kept. With too few rows or groups to
    cross-validate, the middle share is taken and `oof` is empty.
    """
    p = {**DEFAULT_PARAMS, **params}
    groups = [ex.inbox for ex in user]  # a user row's conversation, else its sender, else itself
    n_groups = len(set(groups))
    corpus_weight = float(training_rows(list(corpus), {**p, "user_weight": 1.0}, extra)[2].sum())
    n_user_rows = int(training_rows_with_origin(user, p)[3].sum())  # with their text-only copies
    middle = shares[len(shares) // 2]
    if len(user) < MIN_ROWS_TO_CHOOSE or n_groups < 2:
        return UserFit(user_weight(middle, n_user_rows, corpus_weight), middle, {}, {}, 0)
    folds = min(MAX_FOLDS, n_groups)
    y = np.array([LABELS.index(ex.label) for ex in user])
    splits = list(GroupKFold(n_splits=folds).split(user, y, groups))
    outputs = parallel_map(_fold_task, [(corpus, extra, user, tr, te, p, shares, temperature) for tr, te in splits], n_jobs)
    oof = {s: np.zeros((len(user), len(LABELS))) for s in shares}
    for (_, test_idx), by_share in zip(splits, outputs, strict=True):
        for s in shares:
            oof[s][test_idx] = by_share[s]
    scores = {}
    for s in shares:
        r = classification_report(oof[s], y, thresholds)
        scores[s] = {"macro_f1": r["macro_f1"], "genuine_as_spam_rate": r["genuine_as_spam_rate"]}
    # The smallest share within SHARE_TOLERANCE of the best: with few rows the cross-validation is
    # noisy, and a smaller weight stays nearer the corpus model.
    top = max(scores[s]["macro_f1"] for s in shares)
    best = min(s for s in shares if scores[s]["macro_f1"] >= top - SHARE_TOLERANCE)
    return UserFit(user_weight(best, n_user_rows, corpus_weight), best, oof, scores, folds)
