"""Retrain on newly labelled examples: the same as `triage retrain` (thin wrapper)."""

import sys

from app.cli import main

if __name__ == "__main__":
    sys.exit(main(["retrain", *sys.argv[1:]]))
