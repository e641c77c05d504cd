"""The tables of data/README.md, computed from the data: counts, hands, countries, languages, roles,
the corpus's shape beside the real figures of ../shared/FIELD_NOTES.md, and the labellers' agreement.

    python scripts/datasheet_tables.py            # print the tables
    python scripts/datasheet_tables.py --write    # replace them in data/README.md (between the markers)

The datasheet's prose is written by hand; everything between the markers comes from here.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.first_contacts import CORPUS_FILE, read_corpus  # noqa: E402
from app.inbox_stats import format_comparison, measure_exports  # noqa: E402
from app.simulated import LABELS, iter_sources, load_source  # noqa: E402

START, END = "<!-- tables:start -->", "<!-- tables:end -->"


def md_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def tables(data: Path) -> str:
    sources = [load_source(p) for p in iter_sources([data / "inboxes" / "src"])]
    out: list[str] = []
    by_split: dict[str, Counter[str]] = {"train": Counter(), "test": Counter()}
    hands: dict[str, Counter[str]] = {}
    inboxes: Counter[str] = Counter()
    countries: Counter[str] = Counter()
    languages: Counter[str] = Counter()
    conv_langs: Counter[str] = Counter()
    roles: dict[str, Counter[str]] = {lab: Counter() for lab in LABELS}
    lengths: dict[str, list[int]] = {lab: [] for lab in LABELS}
    no_note = 0
    for s in sources:
        split = "test" if s.hand.startswith("t") else "train"
        inboxes[s.hand] += 1
        countries[str(s.owner.get("country", "?")).split(",")[0].strip()] += 1
        for lang in s.owner.get("languages", []):
            languages[str(lang)] += 1
        h = hands.setdefault(s.hand, Counter())
        for conv in s.conversations:
            if conv.lang:
                conv_langs[conv.lang] += 1
            for m in conv.messages:
                if m.label:
                    by_split[split][m.label] += 1
                    h[m.label] += 1
                    roles[m.label][s.people[m.sender].role or "?"] += 1
                    lengths[m.label].append(len(m.text))
        for inv in s.invitations:
            if inv.incoming and inv.note.strip() and inv.label:
                by_split[split][inv.label] += 1
                h[inv.label] += 1
                roles[inv.label][s.people[inv.person].role or "?"] += 1
                lengths[inv.label].append(len(inv.note))
            elif inv.incoming:
                no_note += 1
    total = sum(sum(c.values()) for c in by_split.values())
    out.append("### Labelled items (inbound messages and invitation notes)\n")
    rows = []
    for split, c in by_split.items():
        n = sum(c.values())
        n_inboxes = sum(v for k, v in inboxes.items() if (k.startswith("t") == (split == "test")))
        rows.append([split, n_inboxes, f"{n:,}", *(f"{c[lab]:,} ({c[lab] / max(n, 1):.1%})" for lab in LABELS)])
    out.append(md_table(["split", "inboxes", "items", *LABELS], rows))
    out.append(f"\nIncoming invitations without a note (labelled by sender, not text to learn from): {no_note:,}.\n")

    out.append("### Hands\n")
    rows = []
    for hand in sorted(hands):
        c = hands[hand]
        n = sum(c.values())
        rows.append([hand, inboxes[hand], f"{n:,}", f"{n / max(total, 1):.1%}", *(c[lab] for lab in LABELS)])
    out.append(md_table(["hand", "inboxes", "items", "share of all items", *LABELS], rows))
    out.append(
        f"\n{len(hands)} hands; the largest writes {max(sum(c.values()) for c in hands.values()) / total:.1%} of the items.\n"
    )

    out.append(f"### Countries of the inboxes' owners ({len(countries)})\n")
    out.append(", ".join(f"{k} {v}" for k, v in sorted(countries.items(), key=lambda kv: (-kv[1], kv[0]))) + "\n")
    out.append(f"### Languages the owners use ({len(languages)} as the authors named them)\n")
    out.append(", ".join(f"{k} {v}" for k, v in sorted(languages.items(), key=lambda kv: (-kv[1], kv[0]))) + "\n")
    if conv_langs:
        out.append("Conversations tagged with a language other than the owner's first one: ")
        out.append(", ".join(f"{k} {v}" for k, v in conv_langs.most_common(40)) + "\n")

    out.append("### Senders' roles, per label (the 12 commonest)\n")
    for lab in LABELS:
        out.append(f"- **{lab}**: " + ", ".join(f"{r} {n}" for r, n in roles[lab].most_common(12)))
    out.append("")

    out.append("### Length of the labelled texts (characters)\n")
    rows = []
    for lab in LABELS:
        v = sorted(lengths[lab])
        q = lambda f, v=v: v[min(len(v) - 1, int(f * len(v)))] if v else 0
        rows.append([lab, len(v), q(0.1), q(0.5), q(0.9), f"{sum(x < 40 for x in v) / max(len(v), 1):.0%}"])
    out.append(md_table(["label", "items", "10th pct", "median", "90th pct", "under 40"], rows))

    for split in ("train", "test"):
        folders = sorted(p for p in (data / "inboxes" / split).glob("*") if p.is_dir())
        if folders:
            out.append(f"\n### The {split} inboxes beside real inboxes (FIELD_NOTES.md section 1)\n")
            out.append(format_comparison(measure_exports(folders)))

    corpus = data / CORPUS_FILE
    if corpus.is_file():
        frame = read_corpus(corpus)
        out.append("\n### First-contact subset (corpus v1, data/corpus.csv)\n")
        counts = frame["label"].value_counts()
        out.append(
            md_table(["rows", *LABELS], [[len(frame), *(int(counts.get(lab, 0)) for lab in LABELS)]])
            + f"\n\n{frame['archetype'].nunique()} archetypes, {(frame['language'] != 'en').mean():.1%} not in English."
        )

    agreement = ROOT / "reports" / "labeller_agreement.json"
    if agreement.is_file():
        a = json.loads(agreement.read_text())
        out.append("\n### Agreement of a second, blind labeller\n")
        out.append(
            f"{a['n']:,} items ({a['share_of_items']:.1%} of all), relabelled blind by {a['hands']} hands: "
            f"observed agreement {a['observed_agreement']:.1%}, Cohen's kappa {a['cohen_kappa']:.3f}. "
            "Confusion (rows: authors, columns: second hand):\n"
        )
        cm = a["confusion"]["rows_author_cols_second"]
        out.append(md_table(["author \\ second", *LABELS], [[lab, *row] for lab, row in zip(LABELS, cm, strict=True)]))
        if "settled" in a:
            s = a["settled"]
            out.append(
                f"\nDisagreements settled by LABELS.md and data/inboxes/LABELLING_RULES.md: {s['kept']} authors' labels kept, "
                f"{s['changed']} changed in the sources."
            )
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT / "data"))
    parser.add_argument("--write", action="store_true", help="replace the tables in data/README.md")
    args = parser.parse_args()
    text = tables(Path(args.data))
    if not args.write:
        print(text)
        return 0
    readme = Path(args.data) / "README.md"
    content = readme.read_text(encoding="utf-8")
    if START not in content or END not in content:
        raise SystemExit(f"{readme} has no {START} ... {END} markers")
    head, rest = content.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{text}{END}{tail}", encoding="utf-8")
    print(f"updated {readme}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
