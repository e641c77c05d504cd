"""Time `triage retrain` on the shipped corpus plus N user rows, in a scratch copy.

Usage: python scripts/bench_retrain.py [--rows 1000]

The user rows are made by splicing sentences of two corpus rows of the same label, so
they are new texts (not duplicates) in the corpus's style. Nothing in data/ or model/
is touched: the data folder and the model store are copied to a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import tempfile
import time
from pathlib import Path

from app.corpus import read_corpus
from app.retrain import retrain
from app.settings import PROJECT_ROOT


def spliced_rows(corpus_csv: Path, n: int, seed: int = 0) -> list[dict]:
    frame = read_corpus(corpus_csv)
    frame = frame[frame["text"].str.len() > 80]
    rng = random.Random(seed)
    rows = []
    by_label = {lab: g["text"].tolist() for lab, g in frame.groupby("label")}
    labels = sorted(by_label)
    while len(rows) < n:
        label = labels[len(rows) % len(labels)]
        a, b = rng.sample(by_label[label], 2)
        head = re.split(r"(?<=[.!?])\s+", a)
        tail = re.split(r"(?<=[.!?])\s+", b)
        text = " ".join(head[: max(1, len(head) // 2)] + tail[len(tail) // 2 :])
        rows.append({"text": text, "label": label, "kind": "message"})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        store = Path(tmp) / "model"
        data.mkdir()
        for name in ("corpus.csv", "test.csv"):
            shutil.copy(PROJECT_ROOT / "data" / name, data / name)
        shutil.copytree(PROJECT_ROOT / "model", store)
        new = Path(tmp) / "user.jsonl"
        new.write_text("".join(json.dumps(r) + "\n" for r in spliced_rows(data / "corpus.csv", args.rows)))
        start = time.perf_counter()
        report = retrain(data, store, add=[new], dry_run=True, log=lambda _: None)
        seconds = time.perf_counter() - start
    print(
        f"retrain on the corpus + {args.rows} user rows ({len(report.accepted)} accepted, "
        f"{len(report.duplicates)} duplicates): {seconds:.1f} s; gate: {report.reason}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
