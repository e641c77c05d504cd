"""Evaluation on the independent test inboxes, in the two ways users run the model.

- text mode: every labelled item scored as a text alone (a pasted message, a plain CSV);
- export mode: each test inbox scored as a whole export folder by `score_file`, the code
  behind `triage score FOLDER`, and the scored rows joined to the labels by file and line.
"""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from app.batch import score_file
from app.corpus import Example, labelled_inbox_folders, load_inboxes, read_labelled_export
from app.metrics import classification_report, headline
from app.model import LABELS
from app.scoring import Scorer
from app.train import evaluate_examples


def score_export_folders(scorer: Scorer, folders: list[Path]) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """(probabilities, true labels, rows) of every labelled item, scored folder by folder as `triage score` does."""
    proba: list[list[float]] = []
    truth: list[int] = []
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for folder in folders:
            labels = {(ex.file, ex.line): ex for ex in read_labelled_export(folder)}
            out = Path(tmp) / f"{folder.name}.csv"
            score_file(folder, out, scorer=scorer, jobs=1, progress=False)
            with open(out, encoding="utf-8", newline="") as fh:
                for row in csv.DictReader(fh):
                    ex = labels.pop((Path(row["file"]).name, int(row["line"])), None)
                    if ex is None:
                        continue
                    proba.append([float(row[f"p_{lab}"]) for lab in LABELS])
                    truth.append(LABELS.index(ex.label))
                    rows.append({"inbox": folder.name, "label": ex.label, "role": ex.role, **row})
            if labels:
                first = next(iter(labels))
                raise ValueError(f"{folder}: {len(labels)} labelled items were not scored by triage score, first {first}")
    return np.asarray(proba), np.asarray(truth), rows


def evaluate_test_inboxes(scorer: Scorer, test_dir: Path) -> dict[str, dict[str, Any]]:
    """Reports for text mode and export mode on every inbox under `test_dir`, and the headline
    figures of each test hand apart (`test_hands`: each hand is a group of inboxes held out whole)."""
    folders = labelled_inbox_folders(test_dir)
    if not folders:
        raise ValueError(f"no labelled test inboxes under {test_dir}: run `triage corpus build`")
    examples: list[Example] = load_inboxes(test_dir)
    thresholds = scorer.model.thresholds
    text = evaluate_examples(scorer.model, examples, "text")
    proba, y, rows = score_export_folders(scorer, folders)
    export = classification_report(proba, y, thresholds)
    export["mode"] = "export (triage score FOLDER)"
    for report in (text, export):
        report["inboxes"] = len(folders)
    export_hands = np.array([row["inbox"].split("-")[0] for row in rows])
    by_hand: dict[str, dict[str, Any]] = {}
    for hand in sorted({ex.hand for ex in examples}):
        mine = export_hands == hand
        by_hand[hand] = {
            "inboxes": sum(f.name.split("-")[0] == hand for f in folders),
            "text": headline(evaluate_examples(scorer.model, [ex for ex in examples if ex.hand == hand], "text")),
            "export": headline(classification_report(proba[mine], y[mine], thresholds)),
        }
    return {"test_inboxes_text": text, "test_inboxes_export": export, "test_hands": by_hand}
