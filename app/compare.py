"""Model selection: alternatives compared in cross-validation grouped by archetype."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.corpus import frame_items
from app.features import items_from_records
from app.metrics import classification_report, label_indices
from app.model import softmax
from app.train import choose_thresholds, cv_groups, fit_temperature, grouped_oof, load_training_frame

CANDIDATES: dict[str, dict[str, Any]] = {
    "lr_words_chars_signals": {},
    "lr_words_chars_no_signals": {"use_signals": False},
    "lr_words_signals": {"use_chars": False},
    "lr_chars_only": {"use_words": False, "use_signals": False},
    "lr_words_chars_signals_C1": {"C": 1.0},
    "lr_words_chars_signals_C30": {"C": 30.0},
    "lr_words_chars_signals_C100": {"C": 100.0},
    "linear_svc_words_chars_signals": {"model": "linear_svc", "C": 0.5},
}


def compare_models(data_dir: Path, out: Path, print_fn: Callable[[str], None] = print) -> dict[str, Any]:
    """Grouped-CV macro-F1, genuine-as-spam and calibration for each candidate; written to `out`."""
    frame = load_training_frame(data_dir)
    items = items_from_records(frame_items(frame))
    y = label_indices(frame["label"].tolist())
    groups = cv_groups(frame)
    results = {}
    for name, params in CANDIDATES.items():
        start = time.perf_counter()
        cv = grouped_oof(items, y, groups, params)
        t = fit_temperature(cv.decision, y)
        proba = softmax(cv.decision / t)
        report = classification_report(proba, y, choose_thresholds(proba, y))
        results[name] = {
            "params": params,
            "macro_f1": report["macro_f1"],
            "accuracy": report["accuracy"],
            "genuine_as_spam_rate": report["genuine_as_spam_rate"],
            "brier": report["brier"],
            "needs_review_rate": report["needs_review_rate"],
            "seconds": round(time.perf_counter() - start, 1),
        }
        print_fn(
            f"{name:<30} macro-F1 {report['macro_f1']:.3f}  genuine->spam {report['genuine_as_spam_rate']:.2%}  "
            f"brier {report['brier']:.3f}  review {report['needs_review_rate']:.1%}  ({results[name]['seconds']} s)"
        )
    payload = {"split": "GroupKFold(4) by archetype", "rows": len(frame), "candidates": results}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return payload
