"""Benchmark `triage score --engine dask` against `--engine local` on the same input, in one run.

Scores one CSV of --rows distinct rows (texts of the training inboxes, each with its own
reference) with the local engine (1 and 2 processes) and on a Dask LocalCluster of 1 and 2
workers, checks every output is identical to the local one, and writes rows/s to
docs/benchmarks.md under "## Dask engine".

    python scripts/bench_dask.py --rows 40000
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_batch import inbox_texts, make_inbox  # noqa: E402
from bench_doc import publish  # noqa: E402

SECTION = "## Dask engine"


def main() -> int:
    from app.batch import score_file

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    runs = [("local", 1), ("local", 2), ("dask", 1), ("dask", 2)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        inbox = Path(tmp) / "inbox.csv"
        make_inbox(inbox, args.rows, inbox_texts())
        reference = None
        for engine, workers in runs:
            out = Path(tmp) / f"{engine}-{workers}.csv"
            start = time.perf_counter()
            result = score_file(inbox, out, jobs=workers, engine=engine, progress=False)
            seconds = time.perf_counter() - start
            text = out.read_text(encoding="utf-8")
            reference = reference or text
            rows.append((engine, workers, result.scored / seconds, text == reference))
    lines = [
        SECTION,
        "",
        f"`python scripts/bench_dask.py --rows {args.rows}` on {datetime.now(UTC):%Y-%m-%d}: {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}. Wall time of `score_file` end to end (the Dask rows include starting the "
        "LocalCluster and loading the model on each worker); every output is compared with the local one.",
        "",
        "| engine | workers | rows/s | output identical to local |",
        "| --- | ---: | ---: | --- |",
        *[f"| {e} | {w} | {r:,.0f} | {'yes' if same else 'NO'} |" for e, w, r, same in rows],
        "",
    ]
    section = "\n".join(lines)
    publish(section, args.out, write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
