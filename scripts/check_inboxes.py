"""Check authored inbox sources and print their shape beside the real figures.

    python scripts/check_inboxes.py data/inboxes/src/h01            # a hand's folder
    python scripts/check_inboxes.py data/inboxes/src/h01/h01-3.json  # one file

Every file is checked against the format (data/inboxes/FORMAT.md), rendered into a
LinkedIn export in a temporary folder and read back through app/inbox.py, then measured
as ../shared/FIELD_NOTES.md section 1 measures real exports. Exit status 1 when a file
breaks the format.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.inbox_stats import format_comparison, measure_exports
from app.simulated import SourceError, iter_sources, load_source, write_export


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="inbox .json files or folders of them")
    args = parser.parse_args()
    failed = 0
    labels: Counter[str] = Counter()
    roles: Counter[tuple[str, str]] = Counter()
    kinds: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        folders = []
        for path in iter_sources(args.paths):
            try:
                source = load_source(path)
            except SourceError as exc:
                print(f"ERROR {exc}")
                failed += 1
                continue
            folder = Path(tmp) / source.inbox
            write_export(source, folder)
            folders.append(folder)
            n_in = 0
            for conv in source.conversations:
                for msg in conv.messages:
                    if msg.label:
                        n_in += 1
                        labels[msg.label] += 1
                        roles[(msg.label, source.people[msg.sender].role)] += 1
                        kinds["message"] += 1
            notes = 0
            for inv in source.invitations:
                if inv.incoming and inv.note.strip():
                    notes += 1
                    labels[inv.label or ""] += 1
                    roles[(inv.label or "", source.people[inv.person].role)] += 1
                    kinds["invite with a note"] += 1
                elif inv.incoming:
                    kinds["invite without a note"] += 1
            print(f"ok    {path}: {n_in} inbound messages, {notes} invitation notes, {len(source.conversations)} conversations")
        if folders:
            shape = measure_exports(folders)
            print()
            print(format_comparison(shape))
            total = sum(labels.values())
            print()
            print(f"labelled items with text: {total:,} ({dict(kinds)})")
            for label in ("genuine", "sales_pitch", "spam"):
                print(f"  {label:12s} {labels[label]:6,d}  {labels[label] / max(total, 1):6.1%}")
            print()
            print("roles (label, role: items):")
            for (label, role), n in sorted(roles.items(), key=lambda kv: (kv[0][0], -kv[1])):
                print(f"  {label:12s} {role:28s} {n}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
