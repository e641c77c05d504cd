"""Model selection: the shipped configuration against alternatives, in grouped cross-validation by inbox.

Every candidate gets the same folds, the same temperature fit and the same threshold rule,
and is reported in export mode and text mode; `triage compare` writes
reports/model_selection.json.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.features import BLOCKS
from app.train import DEFAULT_PARAMS, calibrate, cv_reports, grouped_cv, load_training_examples
from app.workers import DEFAULT_TRAIN_JOBS

CANDIDATES: dict[str, dict[str, Any]] = {
    "shipped": {},
    "without the first-contact corpus (v1)": {"first_contacts": False},
    "without context signals": {"blocks": [b for b in BLOCKS if b != "context"]},
    "without thread words": {"blocks": [b for b in BLOCKS if b != "thread"]},
    "without named signals": {"blocks": [b for b in BLOCKS if b != "signal"]},
    "words and signals only (no characters)": {"blocks": [b for b in BLOCKS if b != "char"]},
    "without text-only copies": {"text_only_copies": False},
    "unknown words left out of the word blocks' norm": {"unseen_words_in_norm": False},
    "balanced class weights": {"class_weight": "balanced"},
    "C=3": {"C": 3.0},
    "C=30": {"C": 30.0},
}


def compare_models(
    data_dir: Path,
    out: Path,
    names: list[str] | None = None,
    folds: int = 5,
    print_fn: Callable[[str], None] = print,
    n_jobs: int = DEFAULT_TRAIN_JOBS,
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, change in CANDIDATES.items():
        if names and name not in names:
            continue
        params = {**DEFAULT_PARAMS, **change}
        examples, extra = load_training_examples(data_dir, params)
        start = time.perf_counter()
        cv = grouped_cv(examples, params, extra, folds=folds, n_jobs=n_jobs)
        reports = cv_reports(cv, *calibrate(cv))
        row: dict[str, Any] = {"params": change, "seconds": round(time.perf_counter() - start, 1)}
        for mode in ("export", "text"):
            r = reports[f"grouped_cv_{mode}"]
            row[mode] = {k: r[k] for k in ("macro_f1", "genuine_as_spam_rate", "needs_review_rate", "brier")}
        results[name] = row
        print_fn(
            f"{name:<42} export macro-F1 {row['export']['macro_f1']:.3f} (g->spam {row['export']['genuine_as_spam_rate']:.2%})"
            f"  text macro-F1 {row['text']['macro_f1']:.3f} (g->spam {row['text']['genuine_as_spam_rate']:.2%})"
            f"  {row['seconds']:.0f} s"
        )
    payload = {"split": f"GroupKFold({folds}) by inbox", "candidates": results}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return payload
