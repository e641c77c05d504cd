"""Train the shipped model: the same as `triage train` (thin wrapper)."""

import sys

from app.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
