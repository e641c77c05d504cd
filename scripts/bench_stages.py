"""Where the time of `triage score --jobs 1` goes: each stage of the scoring path timed apart, in one process.

Makes the same inbox as `bench_batch.py` (--rows rows from the training inboxes' texts, none
repeated), then times, one after the other with in-process clocks: importing the scoring path,
loading the model, reading and validating the CSV (`read_items`), normalising (`prepare`), the
features (`FastFeatures.features`), scoring without reasons and with three (the difference is
the reasons and their summaries), the output cells (`score_cells`) and writing them
(`RowWriter`). Stages run in chunks of 1,000 rows, as `triage score` does. The stages overlap
(scoring repeats normalising and the features), so they explain the end-to-end time of
`bench_batch.py` without adding up to it exactly.

    python scripts/bench_stages.py --rows 60000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

CHUNK = 1000
NO_REASONS = "scoring without reasons (normalising + features + verdicts)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--model", default=str(ROOT / "model"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    from bench_batch import inbox_texts, make_inbox
    from bench_doc import publish

    with tempfile.TemporaryDirectory() as tmp:
        inbox = Path(tmp) / "inbox.csv"
        make_inbox(inbox, args.rows, inbox_texts())
        times: list[tuple[str, float]] = []

        def clock(name: str, started: float) -> float:
            now = time.perf_counter()
            times.append((name, now - started))
            return now

        t = time.perf_counter()
        from app.batch import load_scorer
        from app.inbox import read_items
        from app.output import SCORE_COLUMNS, row_writer, score_cells
        from app.settings import get_settings
        from app.text import prepare

        t = clock("imports of the scoring path", t)
        scorer = load_scorer(args.model)
        t = clock("model load", t)
        items = [r.item for r in read_items(inbox, limits=get_settings().limits()) if r.item is not None]
        t = clock("reading and validating the CSV", t)
        chunks = [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]
        prepared = [[prepare(it) for it in chunk] for chunk in chunks]
        t = clock("normalising (prepare)", t)
        for chunk in prepared:
            scorer.model.fast.features(chunk)
        t = clock("features of normalised texts", t)
        for chunk in chunks:
            scorer.score(chunk, 0)
        t = clock(NO_REASONS, t)
        verdicts = [v for chunk in chunks for v in scorer.score(chunk, 3)]
        t = clock("scoring with 3 reasons", t)
        cells = [score_cells(v, it.text) for v, it in zip(verdicts, items, strict=True)]
        t = clock("output cells", t)
        writer = row_writer(Path(tmp) / "out.csv", list(SCORE_COLUMNS))
        for row in cells:
            writer.write(row)
        writer.commit()
        clock("writing the CSV", t)

    seconds_of = dict(times)
    with_reasons = seconds_of["scoring with 3 reasons"] - seconds_of[NO_REASONS]
    times.append(("of which reasons and summaries (with minus without)", with_reasons))
    lines = [
        "## Where the batch time goes",
        "",
        f"`python scripts/bench_stages.py --rows {args.rows}` on {datetime.now(UTC):%Y-%m-%d}: model `{scorer.version}`, "
        f"{len(items):,} rows made as `bench_batch.py` makes them, each stage of `triage score --jobs 1` timed apart in one "
        "process, in chunks of 1,000 rows. Scoring repeats normalising and the features, so the rows overlap; imports, load, "
        "reading, scoring with reasons, cells and writing add up to the end-to-end time.",
        "",
        "| stage | seconds | µs per row |",
        "| --- | ---: | ---: |",
        *(f"| {name} | {seconds:.2f} | {seconds / len(items) * 1e6:,.0f} |" for name, seconds in times),
        "",
    ]
    publish("\n".join(lines), args.out, write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
