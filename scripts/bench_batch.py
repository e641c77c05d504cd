"""Benchmark `triage score` against a plain scikit-learn pipeline, like for like, in one run.

1. Makes an inbox CSV of --rows rows from the texts of the training inboxes; every row gets a
   distinct reference, so no text repeats (a cache of whole texts would gain nothing).
2. Plain baseline, in one process: TfidfVectorizer word 1-2 + char_wb 3-5 in a FeatureUnion and
   a LogisticRegression, trained on the same inbox texts (not timed), then timed end to end on the
   CSV: read it with pandas, `predict_proba` in chunks of 1,000, write the probabilities as CSV.
3. `triage score INBOX -o OUT --jobs 1` (one process, reasons included), wall time end to end,
   and the same with `--reasons 0` and with `--jobs 2`, each in a subprocess; peak RSS of the
   process tree is sampled (psutil).
4. Prints the table and writes it to docs/benchmarks.md under "## Batch scoring".

    python scripts/bench_batch.py                 # 60,000 rows
    python scripts/bench_batch.py --rows 1000000 --only-memory   # the memory check
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_doc import publish  # noqa: E402

SECTION = "## Batch scoring"


def inbox_texts() -> list[tuple[str, str, str]]:
    from app.corpus import load_inboxes, rendered_inboxes

    return [(ex.item.text, ex.item.kind, ex.label) for ex in load_inboxes(rendered_inboxes(ROOT / "data", "train"))]


def make_inbox(path: Path, rows: int, texts: list[tuple[str, str, str]], seed: int = 7) -> None:
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["id", "text", "kind", "sender_name"])
        for i in range(rows):
            text, kind, _ = texts[rng.randrange(len(texts))]
            out.writerow([f"r{i}", f"{text} (ref {i})" if i % 2 else f"#{i} {text}", kind, f"Sender {i % 997}"])


class TreeMemory:
    """Samples the summed RSS of a process and its descendants; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.1):
        import psutil

        self.proc = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                procs = [self.proc, *self.proc.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(self.interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


MODEL_DIR = ROOT / "model"


def timed_process(cmd: list[str], what: str) -> tuple[float, int]:
    """Wall time of a process from start to exit, and the peak memory of its process tree."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    memory = TreeMemory(proc.pid)
    _, err = proc.communicate()
    seconds = time.perf_counter() - start
    peak = memory.stop()
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed: {err.decode()[-2000:]}")
    return seconds, peak


def run_triage(inbox: Path, out: Path, jobs: int, reasons: int) -> tuple[float, int]:
    cmd = [sys.executable, "-m", "app.cli", "score", str(inbox), "-o", str(out), "--jobs", str(jobs), "--quiet"]
    cmd += ["--reasons", str(reasons), "--model", str(MODEL_DIR)]
    return timed_process(cmd, "triage score")


PLAIN_FIT = """
import sys, joblib
from sklearn.pipeline import Pipeline, FeatureUnion
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
sys.path.insert(0, {root!r})
from app.corpus import load_inboxes
examples = load_inboxes({train!r})
pipe = Pipeline([("features", FeatureUnion([
    ("word", TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)),
    ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), min_df=3, sublinear_tf=True)),
])), ("clf", LogisticRegression(max_iter=2000))]).fit([e.item.text for e in examples], [e.label for e in examples])
joblib.dump(pipe, {model!r})
"""

PLAIN_SCORE = """
import joblib, pandas as pd
pipe = joblib.load({model!r})
frame = pd.read_csv({inbox!r}, dtype=str, keep_default_na=False)
parts = []
for i in range(0, len(frame), 1000):
    chunk = frame.iloc[i:i + 1000]
    proba = pipe.predict_proba(chunk["text"].tolist())
    parts.append(pd.DataFrame(proba, columns=pipe.classes_, index=chunk.index).assign(id=chunk["id"]))
pd.concat(parts).to_csv({out!r}, index=False)
"""


def fit_plain(model: Path) -> None:
    """Train the plain pipeline on the training inboxes and save it (not timed; a file of this run only)."""
    from app.corpus import rendered_inboxes

    code = PLAIN_FIT.format(root=str(ROOT), train=str(rendered_inboxes(ROOT / "data", "train")), model=str(model))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"training the plain pipeline failed: {done.stderr[-2000:]}")


def run_plain(model: Path, inbox: Path, out: Path) -> tuple[float, int]:
    """The plain pipeline in its own process, timed like `triage score`: start, load, read, score, write."""
    code = PLAIN_SCORE.format(model=str(model), inbox=str(inbox), out=str(out))
    return timed_process([sys.executable, "-c", code], "the plain pipeline")


def markdown(rows: int, results: list[tuple[str, float, int | None]], plain: tuple[float, int] | None) -> str:
    from app.artifact import load_model

    model = load_model(MODEL_DIR)
    lines = [
        SECTION,
        "",
        f"`python scripts/bench_batch.py --rows {rows}` on {datetime.now(UTC):%Y-%m-%d}: {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, model `{model.version}`. {rows:,} rows drawn from the training inboxes' "
        "texts, each with a distinct reference so no text repeats. Every row is a separate process timed from outside "
        "the same way, end to end: start, imports, model load, read, score, write. The plain pipeline is trained on the "
        "same training inboxes beforehand (not timed). A warm-up run of `triage score` on 100 rows comes first, so "
        "numba's on-disk cache of compiled loops is in place, as after any first use.",
        "",
        "| what | processes | rows/s | peak memory |",
        "| --- | ---: | ---: | ---: |",
    ]
    if plain is not None:
        lines.append(
            f"| plain pipeline: word 1-2 + char_wb 3-5 TF-IDF, LR `predict_proba` (no reasons) | 1 | {rows / plain[0]:,.0f} | "
            f"{plain[1] / 2**20:,.0f} MiB |"
        )
    for name, seconds, peak in results:
        mem = f"{peak / 2**20:,.0f} MiB" if peak else ""
        lines.append(f"| {name} | {'2' if 'jobs 2' in name else '1'} | {rows / seconds:,.0f} | {mem} |")
    if plain is not None:
        ratio = plain[0] / results[0][1]
        lines += [
            "",
            f"- `triage score --jobs 1`, reasons included, against the plain pipeline: {ratio:.2f}x (target 2x: "
            f"{'met' if ratio >= 2 else 'not met'}).",
        ]
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    global MODEL_DIR
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--only-memory", action="store_true", help="only `triage score --jobs 2`, for the memory ceiling")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--model", default=None, help="model store to score with (default: the shipped one)")
    args = parser.parse_args()
    MODEL_DIR = Path(args.model) if args.model else MODEL_DIR
    with tempfile.TemporaryDirectory() as tmp:
        inbox = Path(tmp) / "inbox.csv"
        texts = inbox_texts()
        make_inbox(inbox, args.rows, texts)
        make_inbox(Path(tmp) / "warm.csv", 100, texts, seed=8)
        run_triage(Path(tmp) / "warm.csv", Path(tmp) / "warm.out.csv", 1, 3)
        results: list[tuple[str, float, int | None]] = []
        plain = None
        if not args.only_memory:
            fit_plain(Path(tmp) / "plain.joblib")
            plain = run_plain(Path(tmp) / "plain.joblib", inbox, Path(tmp) / "plain.csv")
            results.append(("`triage score --jobs 1` (3 reasons)", *run_triage(inbox, Path(tmp) / "a.csv", 1, 3)))
            results.append(("`triage score --jobs 1 --reasons 0`", *run_triage(inbox, Path(tmp) / "b.csv", 1, 0)))
        results.append(("`triage score --jobs 2` (3 reasons)", *run_triage(inbox, Path(tmp) / "c.csv", 2, 3)))
    section = markdown(args.rows, results, plain)
    publish(section, args.out, write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
