"""Check an authored corpus file (JSONL) against data/authored/BRIEF.md.

Usage: python scripts/check_authored.py FILE.jsonl [--min-rows N]
Prints OK with counts, or every problem with its line number.
"""

from __future__ import annotations

import collections
import json
import sys

LABELS = {"genuine", "sales_pitch", "spam"}
KINDS = {"invite", "message"}
INT_KEYS = {
    "sender_connections",
    "mutual_connections",
    "sender_account_age_days",
    "minutes_since_connected",
    "prior_unanswered",
}
STR_KEYS = {"sender_name", "sender_headline", "recipient_name"}
BOOL_KEYS = {"sender_has_photo"}
REQUIRED = {"label", "kind", "archetype", "language", "text"}
ALLOWED = REQUIRED | INT_KEYS | STR_KEYS | BOOL_KEYS | {"id", "source", "note"}


def check_row(row: object) -> list[str]:
    """Return the problems of one parsed row (empty when it is valid)."""
    if not isinstance(row, dict):
        return ["not a JSON object"]
    problems = [f"missing key {k!r}" for k in sorted(REQUIRED - row.keys())]
    problems += [f"unknown key {k!r}" for k in sorted(row.keys() - ALLOWED)]
    if row.get("label") not in LABELS:
        problems.append(f"label {row.get('label')!r} not in {sorted(LABELS)}")
    if row.get("kind") not in KINDS:
        problems.append(f"kind {row.get('kind')!r} not in {sorted(KINDS)}")
    arch = row.get("archetype", "")
    if not isinstance(arch, str) or "/" not in arch or arch.split("/")[0] != row.get("label"):
        problems.append(f"archetype {arch!r} must be '<label>/<name>'")
    text = row.get("text")
    if not isinstance(text, str):
        problems.append("text must be a string")
    else:
        if row.get("kind") == "invite" and len(text) > 300:
            problems.append(f"invite note is {len(text)} chars (max 300)")
        if row.get("kind") == "message" and not text.strip():
            problems.append("message with empty text")
        if len(text) > 2000:
            problems.append(f"text is {len(text)} chars (max 2000)")
    for k in INT_KEYS & row.keys():
        if not isinstance(row[k], int) or isinstance(row[k], bool) or row[k] < 0:
            problems.append(f"{k} must be a non-negative int or absent")
    for k in BOOL_KEYS & row.keys():
        if not isinstance(row[k], bool):
            problems.append(f"{k} must be true/false or absent")
    for k in STR_KEYS & row.keys():
        if not isinstance(row[k], str):
            problems.append(f"{k} must be a string or absent")
    lang = row.get("language")
    if not isinstance(lang, str) or not (2 <= len(lang) <= 3) or not lang.isalpha():
        problems.append(f"language {lang!r} must be an ISO 639-1 code")
    return problems


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    path = argv[0]
    min_rows = int(argv[argv.index("--min-rows") + 1]) if "--min-rows" in argv else 0
    errors: list[str] = []
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                errors.append(f"line {lineno}: invalid JSON ({exc.msg})")
                continue
            errors += [f"line {lineno}: {p}" for p in check_row(row)]
            rows.append(row)
    texts = collections.Counter(r.get("text", "").strip().lower() for r in rows if isinstance(r, dict))
    for text, n in texts.items():
        if n > 1 and text:
            errors.append(f"duplicate text x{n}: {text[:60]!r}")
    if len(rows) < min_rows:
        errors.append(f"only {len(rows)} rows (need {min_rows})")
    if errors:
        print("\n".join(errors))
        print(f"{len(errors)} problem(s)")
        return 1
    by_arch = collections.Counter(r["archetype"] for r in rows)
    langs = collections.Counter(r["language"] for r in rows)
    non_en = sum(n for lang, n in langs.items() if lang != "en")
    print(f"OK: {len(rows)} rows, {len(by_arch)} archetypes, non-English {non_en / max(len(rows), 1):.1%}")
    for arch, n in sorted(by_arch.items()):
        print(f"  {arch}: {n}")
    print("  languages:", dict(langs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
