"""A new user's retrain, end to end: label ~200 messages of inboxes the model never saw, retrain, compare.

The situation of issue 10's check, on simulated data: one test hand's inboxes (written by a
hand the model never saw) stand for a user. `--labels` of their items, drawn at random and
written as a plain `text,label` CSV (no conversation, no sender: what a user pastes), go
through `triage retrain --add` in a scratch copy of the data and the model store, with the
gate and without `--force`. The hand's other items are then scored by the model before and
after, as bare texts and as their exports give them. The frozen test inboxes the gate uses as
a guard include this hand's inboxes, so the guard sees rows the candidate trained on; the
user's rows, cross-validated, decide first.

    python scripts/bench_user_retrain.py [--hand t03] [--labels 216] [--seed 0]

Writes reports/user_retrain-HAND.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.artifact import load_model  # noqa: E402
from app.corpus import Example, read_labelled_export, rendered_inboxes  # noqa: E402
from app.items import Item  # noqa: E402
from app.metrics import classification_report  # noqa: E402
from app.model import LABELS, TriageModel  # noqa: E402


def scores(model: TriageModel, items: list[Item], labels: list[str]) -> dict[str, float]:
    y = np.array([LABELS.index(label) for label in labels])
    r = classification_report(model.predict_proba(items), y, model.thresholds)
    return {k: round(float(r[k]), 4) for k in ("macro_f1", "genuine_as_spam_rate", "accuracy")} | {
        "per_class_f1": {c: round(float(r["per_class"][c]["f1"]), 4) for c in LABELS}
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hand", default="t03", help="the test hand whose inboxes stand for the user")
    parser.add_argument("--labels", type=int, default=216)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    folders = sorted(p for p in rendered_inboxes(ROOT / "data", "test").glob(f"{args.hand}-*") if (p / "labels.csv").is_file())
    if not folders:
        parser.error(f"no test inboxes of hand {args.hand!r}")
    examples: list[Example] = [ex for f in folders for ex in read_labelled_export(f) if ex.item.text.strip()]
    order = list(range(len(examples)))
    random.Random(args.seed).shuffle(order)
    seen = {i for i in order[: args.labels]}
    rest = [ex for i, ex in enumerate(examples) if i not in seen]
    with tempfile.TemporaryDirectory(prefix="triage-user-retrain-") as tmp:
        scratch = Path(tmp)
        shutil.copytree(ROOT / "data", scratch / "data", ignore=shutil.ignore_patterns("user"))
        shutil.copytree(ROOT / "model", scratch / "model")
        labels_csv = scratch / "labels.csv"
        with open(labels_csv, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["text", "label"])
            writer.writerows([examples[i].item.text, examples[i].label] for i in sorted(seen))
        before = load_model(scratch / "model")
        env = {**os.environ, "TRIAGE_DATA_DIR": str(scratch / "data"), "TRIAGE_MODEL_DIR": str(scratch / "model")}
        start = time.perf_counter()
        run = subprocess.run(
            [sys.executable, "-m", "app.cli", "retrain", "--add", str(labels_csv)],
            env=env,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        seconds = time.perf_counter() - start
        print(run.stdout[-4000:], run.stderr[-2000:], sep="\n")
        after = load_model(scratch / "model")
        labels = [ex.label for ex in rest]
        texts = [Item(text=ex.item.text) for ex in rest]
        exports = [ex.item for ex in rest]
        result = {
            "hand": args.hand,
            "inboxes": [f.name for f in folders],
            "labelled": len(seen),
            "held_out": len(rest),
            "seed": args.seed,
            "exit_code": run.returncode,
            "promoted": after.version != before.version,
            "before_version": before.version,
            "after_version": after.version,
            "retrain_seconds": round(seconds, 1),
            "as_text": {"before": scores(before, texts, labels), "after": scores(after, texts, labels)},
            "in_export": {"before": scores(before, exports, labels), "after": scores(after, exports, labels)},
        }
    out = ROOT / "reports" / f"user_retrain-{args.hand}.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for mode in ("as_text", "in_export"):
        b, a = result[mode]["before"], result[mode]["after"]
        print(
            f"{mode:>9}: macro-F1 {b['macro_f1']:.4f} -> {a['macro_f1']:.4f}, "
            f"genuine->spam {b['genuine_as_spam_rate']:.2%} -> {a['genuine_as_spam_rate']:.2%}"
        )
    print(f"promoted: {result['promoted']} (exit {run.returncode}, {seconds:.0f} s); wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
