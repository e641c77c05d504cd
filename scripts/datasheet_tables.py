"""Print the count tables of data/README.md from data/corpus.csv and data/test.csv.

Usage: python scripts/datasheet_tables.py [DATA_DIR] > /tmp/tables.md
The datasheet's prose is written by hand; its tables are pasted from this output.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from app.corpus import CORPUS_FILE, TEST_FILE, read_corpus


def table(frame: pd.DataFrame, rows: str, cols: str) -> str:
    counts = pd.crosstab(frame[rows], frame[cols], margins=True, margins_name="total")
    header = f"| {rows} | " + " | ".join(map(str, counts.columns)) + " |"
    sep = "|" + "---|" * (len(counts.columns) + 1)
    body = [f"| {idx} | " + " | ".join(str(v) for v in row) + " |" for idx, row in counts.iterrows()]
    return "\n".join([header, sep, *body])


def main(argv: list[str]) -> int:
    data = Path(argv[0]) if argv else Path("data")
    for name, path in (("Training corpus", data / CORPUS_FILE), ("Independent test file", data / TEST_FILE)):
        frame = read_corpus(path)
        frame["origin"] = frame["source"].str.split(":").str[0]
        frame["length"] = pd.cut(
            frame["text"].str.len(), [-1, 0, 60, 300, 800, 5000], labels=["empty", "1-60", "61-300", "301-800", "801+"]
        )
        with_meta = frame[["sender_connections", "mutual_connections", "sender_has_photo"]].notna().any(axis=1)
        print(
            f"### {name}: {len(frame)} rows, {frame['archetype'].nunique()} archetypes, "
            f"{(frame['language'] != 'en').mean():.1%} not in English, {with_meta.mean():.1%} with profile metadata\n"
        )
        print(table(frame, "label", "origin"), "\n")
        print(table(frame, "label", "language"), "\n")
        print(table(frame, "label", "length"), "\n")
        print(table(frame, "archetype", "label"), "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
