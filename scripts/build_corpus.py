"""Rebuild data/corpus.csv and data/test.csv from the authored JSONL: `triage build-corpus`."""

import sys

from app.cli import main

if __name__ == "__main__":
    sys.exit(main(["build-corpus", *sys.argv[1:]]))
