"""Training: grouped cross-validation, temperature calibration, thresholds, the artifact."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy.optimize import minimize_scalar
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

from app.artifact import runtime_versions, save_model
from app.corpus import CORPUS_FILE, frame_items, read_corpus
from app.features import FEATURES_VERSION, SIGNAL_DESCRIPTIONS, Item, ItemFeaturizer, items_from_records
from app.metrics import classification_report, label_indices
from app.model import LABELS, Thresholds, TriageModel, decide, softmax

# The shipped configuration; `compare_models` records why it won.
DEFAULT_PARAMS: dict[str, Any] = {
    "model": "logreg",
    "C": 100.0,
    "word_min_df": 2,
    "char_min_df": 3,
    "use_words": True,
    "use_chars": True,
    "use_signals": True,
    "signal_weight": 1.0,
    "tol": 1e-5,
}
GENUINE_AS_SPAM_TARGET = 0.005  # on out-of-fold predictions, when choosing the spam threshold
CONFIDENT_ACCURACY_TARGET = 0.97  # accuracy wanted on items that are not sent to review
MAX_REVIEW_SHARE = 0.2


def make_pipeline(params: dict[str, Any] | None = None) -> Pipeline:
    p = {**DEFAULT_PARAMS, **(params or {})}
    featurizer = ItemFeaturizer(
        word_min_df=p["word_min_df"],
        char_min_df=p["char_min_df"],
        use_words=p["use_words"],
        use_chars=p["use_chars"],
        use_signals=p["use_signals"],
        signal_weight=p["signal_weight"],
    )
    clf: LogisticRegression | LinearSVC
    if p["model"] == "linear_svc":
        clf = LinearSVC(C=p["C"], class_weight="balanced", max_iter=5000, tol=p["tol"])
    else:
        clf = LogisticRegression(C=p["C"], class_weight="balanced", max_iter=3000, tol=p["tol"])
    return Pipeline([("features", featurizer), ("clf", clf)])


@dataclass
class CVResult:
    decision: np.ndarray  # out-of-fold decision values, (n, 3)
    folds: int
    groups: int
    full: Pipeline | None = None  # fitted on every row, when asked for


def grouped_oof(
    items: Sequence[Item],
    y: np.ndarray,
    groups: Sequence[str],
    params: dict[str, Any] | None = None,
    folds: int = 4,
    n_jobs: int = 2,
    fit_full: bool = False,
) -> CVResult:
    """Out-of-fold decision values, folds holding whole archetypes out.

    With `fit_full`, the pipeline fitted on every row is trained in the same worker pool,
    so on two cores four folds and the final fit take three rounds instead of four.
    """
    n_groups = len(set(groups))
    folds = min(folds, n_groups)
    decision = np.zeros((len(items), len(LABELS)))
    items = list(items)
    label_names = np.asarray(LABELS)[y]
    splits = list(GroupKFold(n_splits=folds).split(items, y, groups))

    def run_fold(train_idx: np.ndarray, test_idx: np.ndarray | None) -> Any:
        pipe = make_pipeline(params).fit([items[i] for i in train_idx], label_names[train_idx])
        return pipe if test_idx is None else _full_decision(pipe, [items[i] for i in test_idx])

    tasks: list[tuple[np.ndarray, np.ndarray | None]] = list(splits)
    if fit_full:
        tasks.insert(0, (np.arange(len(items)), None))  # the longest task first
    outputs = Parallel(n_jobs=n_jobs)(delayed(run_fold)(tr, te) for tr, te in tasks)
    full = outputs.pop(0) if fit_full else None
    for (_, test_idx), out in zip(splits, outputs, strict=True):
        decision[test_idx] = out
    return CVResult(decision, folds, n_groups, full)


def _full_decision(pipe: Pipeline, items: Sequence[Item]) -> np.ndarray:
    """Decision values for all three classes even if a fold's training set lacked one."""
    out = np.full((len(items), len(LABELS)), -1e3)
    cols = [LABELS.index(c) for c in pipe[-1].classes_]
    out[:, cols] = pipe.decision_function(list(items))
    return out


def fit_temperature(decision: np.ndarray, y: np.ndarray) -> float:
    """The temperature T minimising the log loss of softmax(decision / T)."""

    def nll(t: float) -> float:
        p = softmax(decision / t)
        return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1))))

    return float(minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded").x)


def choose_thresholds(proba: np.ndarray, y: np.ndarray) -> Thresholds:
    """Thresholds chosen on out-of-fold probabilities, with genuine-as-spam as the costliest error.

    spam: the lowest p(spam) a spam verdict needs for genuine-as-spam <= GENUINE_AS_SPAM_TARGET.
    review: the lowest top probability that leaves CONFIDENT_ACCURACY_TARGET accuracy on the
    rest, without sending more than MAX_REVIEW_SHARE of items to review.
    """
    genuine = y == LABELS.index("genuine")
    spam_t = 0.95
    for t in np.round(np.arange(0.34, 0.951, 0.01), 2):
        verdict, _ = decide(proba, Thresholds(review=0.0, spam=float(t)))
        if ((verdict == LABELS.index("spam")) & genuine).sum() <= GENUINE_AS_SPAM_TARGET * max(genuine.sum(), 1):
            spam_t = float(t)
            break
    review_t = 0.34
    for t in np.round(np.arange(0.34, 0.951, 0.01), 2):
        verdict, review = decide(proba, Thresholds(review=float(t), spam=spam_t))
        if review.mean() > MAX_REVIEW_SHARE:
            break
        review_t = float(t)
        ok = ~review
        if ok.any() and (verdict[ok] == y[ok]).mean() >= CONFIDENT_ACCURACY_TARGET:
            break
    return Thresholds(review=review_t, spam=spam_t)


def fold_temperature(pipe: Pipeline, temperature: float) -> Pipeline:
    """Divide the linear step by T, so decision values (and explanations) are calibrated."""
    clf = pipe[-1]
    clf.coef_ = clf.coef_ / temperature
    clf.intercept_ = clf.intercept_ / temperature
    return pipe


def sha256_frame(frame: pd.DataFrame) -> str:
    return hashlib.sha256(frame.to_csv(index=False).encode("utf-8")).hexdigest()


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).resolve().parent
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


@dataclass
class TrainResult:
    model: TriageModel
    manifest: dict[str, Any]
    cv_report: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


def load_training_frame(data_dir: Path) -> pd.DataFrame:
    """The shipped corpus plus any user-labelled rows under data/labelled/user/."""
    frames = [read_corpus(Path(data_dir) / CORPUS_FILE)]
    user_dir = Path(data_dir) / "labelled" / "user"
    for path in sorted(user_dir.glob("*.csv")) if user_dir.is_dir() else []:
        frames.append(read_corpus(path))
    return pd.concat(frames, ignore_index=True)


def cv_groups(frame: pd.DataFrame) -> list[str]:
    """Cross-validation groups: the archetype, except that user-labelled rows are each their own group.

    Whole archetypes are held out, so a score measures generalisation to new kinds of
    message; user rows are spread over the folds so every one gets an honest prediction.
    """
    archetypes = frame["archetype"].fillna("unknown").astype(str)
    sources = frame["source"].fillna("").astype(str) if "source" in frame else pd.Series([""] * len(frame))
    return [f"user:{i}" if src == "user" else arch for i, (src, arch) in enumerate(zip(sources, archetypes, strict=True))]


def train_model(
    frame: pd.DataFrame, params: dict[str, Any] | None = None, folds: int = 4, version: str | None = None
) -> TrainResult:
    """Cross-validate (grouped by archetype), calibrate, choose thresholds, fit on everything."""
    items = items_from_records(frame_items(frame))
    y = label_indices(frame["label"].tolist())
    cv = grouped_oof(items, y, cv_groups(frame), params, folds, fit_full=True)
    temperature = fit_temperature(cv.decision, y)
    oof_proba = softmax(cv.decision / temperature)
    thresholds = choose_thresholds(oof_proba, y)
    cv_report = classification_report(oof_proba, y, thresholds)
    cv_report.update(folds=cv.folds, groups=cv.groups, split="GroupKFold by archetype (user rows spread over folds)")
    assert cv.full is not None
    pipe = fold_temperature(cv.full, temperature)
    now = datetime.now(UTC)
    data_sha = sha256_frame(frame)
    manifest = {
        "version": version or f"v{now:%Y%m%d-%H%M%S}-{data_sha[:8]}",
        "created_at": now.isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "versions": runtime_versions(),
        "features_version": FEATURES_VERSION,
        "labels": list(LABELS),
        "params": {**DEFAULT_PARAMS, **(params or {})},
        "temperature": round(temperature, 6),
        "thresholds": {"review": thresholds.review, "spam": thresholds.spam},
        "training_data": {
            "sha256": data_sha,
            "rows": len(frame),
            "rows_by_label": {lab: int((frame["label"] == lab).sum()) for lab in LABELS},
            "archetypes": int(frame["archetype"].nunique()),
        },
        "n_features": int(pipe[0].n_features_out_),
        "signals": SIGNAL_DESCRIPTIONS,
        "metrics": {"grouped_cv": _headline(cv_report)},
    }
    model = TriageModel(pipe, thresholds, manifest)
    return TrainResult(model, manifest, cv_report, extra={"oof_proba": oof_proba})


def _headline(report: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "n",
        "macro_f1",
        "accuracy",
        "genuine_as_spam_rate",
        "genuine_as_sales_pitch_rate",
        "needs_review_rate",
        "brier",
        "log_loss",
    )
    return {k: report[k] for k in keys} | {"per_class_f1": {k: v["f1"] for k, v in report["per_class"].items()}}


def evaluate_frame(model: TriageModel, frame: pd.DataFrame) -> dict[str, Any]:
    """Metrics of a model on a labelled frame (never one it trained on)."""
    items = items_from_records(frame_items(frame))
    proba = model.predict_proba(items)
    return classification_report(proba, label_indices(frame["label"].tolist()), model.thresholds)


def train_and_save(
    data_dir: Path, out_dir: Path, test_file: Path | None = None, params: dict[str, Any] | None = None, make_current: bool = True
) -> TrainResult:
    """Train on a data folder, evaluate on the independent test file if given, save a new version."""
    frame = load_training_frame(data_dir)
    result = train_model(frame, params)
    if test_file is not None and Path(test_file).is_file():
        test_report = evaluate_frame(result.model, read_corpus(Path(test_file)))
        result.manifest["metrics"]["independent_test"] = _headline(test_report)
        result.extra["test_report"] = test_report
    result.model.manifest = result.manifest
    result.extra["path"] = save_model(result.model, out_dir, result.manifest, make_current=make_current)
    return result
