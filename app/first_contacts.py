"""The first-contact corpus (corpus v1): authored JSONL files in, a CSV in the corpus columns out.

Kept as a smaller first-contact subset beside the simulated inboxes (`app/corpus.py`):
isolated invite notes and messages, mostly first contacts, in balanced classes.

Authored rows (`data/authored/*.jsonl`, written by several independent hands) keep
their text; placeholders such as `@@RECIPIENT@@` are filled from name pools of many
cultures. Augmented copies (other names, light noise) are built on top and marked in
`source`. The independent test file (`data/test/*.jsonl`) is never augmented.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from app.items import ITEM_FIELDS, LABELS

CORPUS_COLUMNS = (
    "id",
    "label",
    "kind",
    "text",
    "sender_name",
    "sender_headline",
    "sender_connections",
    "mutual_connections",
    "sender_has_photo",
    "sender_account_age_days",
    "recipient_name",
    "minutes_since_connected",
    "prior_unanswered",
    "archetype",
    "language",
    "source",
)
INT_COLUMNS = (
    "sender_connections",
    "mutual_connections",
    "sender_account_age_days",
    "minutes_since_connected",
    "prior_unanswered",
)
CORPUS_FILE = "corpus.csv"
TEST_FILE = "test.csv"

FIRST_NAMES = (
    "Gary",
    "Aisha",
    "Chinedu",
    "Ngozi",
    "Oluwaseun",
    "Priya",
    "Rahul",
    "Ananya",
    "Vikram",
    "Wanjiru",
    "Kamau",
    "Achieng",
    "Jonas",
    "Lena",
    "Matthias",
    "Sofia",
    "Mateo",
    "Camila",
    "Lucas",
    "Beatriz",
    "Juan",
    "Marie",
    "Antoine",
    "Giulia",
    "Marco",
    "Emily",
    "Michael",
    "Jessica",
    "Tyler",
    "Mei",
    "Wei",
    "Hiroshi",
    "Yuki",
    "Fatima",
    "Omar",
    "Kwame",
    "Abena",
    "Tunde",
    "Siddharth",
    "Deepika",
    "Thabo",
    "Zanele",
    "Maria",
    "José",
    "Ivan",
    "Olga",
    "Sanjay",
    "Nkechi",
    "Emeka",
    "Grace",
    "David",
    "Sarah",
    "Ahmed",
    "Layla",
    "Daniel",
    "Chloe",
    "Arjun",
    "Kavya",
)
LAST_NAMES = (
    "Anderson",
    "Okafor",
    "Adeyemi",
    "Sharma",
    "Iyer",
    "Kariuki",
    "Otieno",
    "Müller",
    "Schmidt",
    "García",
    "López",
    "Silva",
    "Santos",
    "Dubois",
    "Rossi",
    "Bianchi",
    "Johnson",
    "Nguyen",
    "Chen",
    "Tanaka",
    "Khan",
    "Mensah",
    "Balogun",
    "Patel",
    "Reddy",
    "Dlamini",
    "Petrova",
    "Kowalski",
    "Williams",
    "Brown",
    "Hassan",
    "Mwangi",
    "Obi",
)
COMPANIES = (
    "Acme Corp",
    "Infosys",
    "Flutterwave",
    "Safaricom",
    "Siemens",
    "Nubank",
    "Globex",
    "Initech",
    "Northwind",
    "Paystack",
    "Zoho",
    "Andela",
    "Delivery Hero",
    "MercadoLibre",
    "Contoso",
    "Wipro",
    "Interswitch",
    "Jumia",
    "BrightPath Analytics",
    "Helios Health",
    "Kestrel Logistics",
    "Bluefin Capital",
    "Lumen Labs",
    "TechNova",
)
CITIES = (
    "Lagos",
    "Bangalore",
    "Nairobi",
    "Berlin",
    "Phoenix",
    "São Paulo",
    "Manila",
    "Accra",
    "Pune",
    "Madrid",
    "Toronto",
    "London",
    "Lisbon",
    "Milan",
    "Cape Town",
    "Mexico City",
    "Dubai",
    "Hyderabad",
)
SCHOOLS = (
    "University of Lagos",
    "IIT Bombay",
    "University of Nairobi",
    "TU Munich",
    "Arizona State University",
    "USP",
    "Ateneo de Manila",
    "Makerere University",
    "Bocconi",
    "McGill",
    "Anna University",
    "UCT",
)
EVENTS = (
    "Web Summit",
    "the DevFest meetup",
    "AfricArena",
    "the PMI chapter meeting",
    "SaaStr",
    "PyCon",
    "the HR Tech conference",
    "GITEX",
    "the Fintech Week panel",
    "TechCrunch Disrupt",
    "the alumni mixer",
)
EMOJI = ("🙂", "🙏", "🚀", "👍", "🔥", "😊", "✨", "💯", "🎉", "👋")

_PLACEHOLDER = re.compile(r"@@([A-Z_]+)@@")


def _rng(*parts: Any) -> random.Random:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()
    return random.Random(int(digest[:16], 16))


def fill_placeholders(text: str, rng: random.Random, fields: dict[str, Any] | None = None) -> tuple[str, dict[str, str]]:
    """Fill @@PLACEHOLDERS@@ with names from the pools, in the text and in the string `fields`.

    Returns the text and a dict of filled fields: the given string fields, plus
    recipient_name / sender_name when the text names those people.
    """
    recipient = (rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES))
    sender = (rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES))
    values = {
        "RECIPIENT": recipient[0],
        "RECIPIENT_FULL": f"{recipient[0]} {recipient[1]}",
        "RECIPIENT_INITIAL": f"{recipient[0]} {recipient[1][0]}.",
        "SENDER": sender[0],
        "SENDER_FULL": f"{sender[0]} {sender[1]}",
        "COMPANY": rng.choice(COMPANIES),
        "SENDER_COMPANY": rng.choice(COMPANIES),
        "CITY": rng.choice(CITIES),
        "SCHOOL": rng.choice(SCHOOLS),
        "EVENT": rng.choice(EVENTS),
    }
    used: set[str] = set()

    def sub(m: re.Match[str]) -> str:
        used.add(m.group(1))
        return values.get(m.group(1), m.group(0))

    filled = _PLACEHOLDER.sub(sub, text)
    people = {k: _PLACEHOLDER.sub(sub, v) for k, v in (fields or {}).items() if isinstance(v, str) and "@@" in v}
    if used & {"RECIPIENT", "RECIPIENT_FULL", "RECIPIENT_INITIAL"}:
        people.setdefault("recipient_name", values["RECIPIENT_FULL"])
    if used & {"SENDER", "SENDER_FULL"}:
        people.setdefault("sender_name", values["SENDER_FULL"])
    return filled, people


def _typos(text: str, rng: random.Random) -> str:
    chars = list(text)
    for _ in range(max(1, len(chars) // 80)):
        i = rng.randrange(max(len(chars) - 1, 1))
        if i + 1 >= len(chars):
            break
        if chars[i].isalpha() and chars[i + 1].isalpha():
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
    return "".join(chars)


NOISE = {
    "lowercase": lambda t, r: t.lower(),
    "typos": _typos,
    "emoji": lambda t, r: f"{t} {r.choice(EMOJI)}" if r.random() < 0.5 else f"{r.choice(EMOJI)} {t}",
    "no_punctuation": lambda t, r: re.sub(r"[.,;:]", "", t),
    "entities": lambda t, r: t.replace("'", "&rsquo;").replace("&", "&amp;", 1) if "&" in t else t.replace("'", "&#39;"),
    "line_breaks": lambda t, r: re.sub(r"(?<=[.!?]) ", "\n", t, count=3),
    "single_line": lambda t, r: re.sub(r"\s*\n\s*", " ", t),
}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file; a line that is not JSON raises ValueError naming file and line."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
    return rows


def _base_row(row: dict[str, Any], hand: str, row_id: str) -> dict[str, Any]:
    out = {c: row.get(c) for c in CORPUS_COLUMNS}
    out["id"] = row_id
    out["source"] = f"authored:{hand}"
    return out


def _string_fields(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row.get(k) for k in ("sender_name", "sender_headline", "recipient_name")}


def _fillable(row: dict[str, Any], key: str) -> bool:
    """A field may take a filled value when the author left it empty or wrote a placeholder in it."""
    value = row.get(key)
    return not value or (isinstance(value, str) and "@@" in value)


def build_rows(authored: Iterable[tuple[str, int, dict[str, Any]]], copies: float = 0.5) -> list[dict[str, Any]]:
    """Corpus rows from (hand, line, authored row): each authored row once, plus augmented copies.

    `copies` is the mean number of augmented copies per authored row (deterministic).
    """
    out = []
    for hand, lineno, row in authored:
        rng = _rng(hand, lineno)
        base = _base_row(row, hand, f"{hand}-{lineno:04d}-0")
        text, people = fill_placeholders(row["text"], rng, _string_fields(row))
        base.update(text=text, **{k: v for k, v in people.items() if _fillable(row, k)})
        out.append(base)
        n_copies = int(copies) + (1 if rng.random() < copies - int(copies) else 0)
        for k in range(1, n_copies + 1):
            aug = _base_row(row, hand, f"{hand}-{lineno:04d}-{k}")
            text, people = fill_placeholders(row["text"], rng, _string_fields(row))
            ops = ["names"] if "@@" in row["text"] else []
            for op in rng.sample(sorted(NOISE), k=rng.choice((1, 1, 2))):
                new = NOISE[op](text, rng)
                if new != text:
                    text = new
                    ops.append(op)
            if not text.strip() and row["kind"] == "invite":
                ops.append("metadata_jitter")
                for col in ("sender_connections", "mutual_connections", "sender_account_age_days"):
                    if isinstance(row.get(col), int):
                        aug[col] = max(0, row[col] + rng.randint(-3, 3) * max(1, row[col] // 10))
            if not ops:
                continue
            aug.update(
                text=text, source=f"augmented:{hand}:{'+'.join(ops)}", **{k2: v for k2, v in people.items() if _fillable(row, k2)}
            )
            out.append(aug)
    return out


def authored_rows(folder: Path) -> list[tuple[str, int, dict[str, Any]]]:
    """(hand, line number, row) for every JSONL file in a folder, in a stable order."""
    rows = []
    for path in sorted(folder.glob("*.jsonl")):
        hand = path.stem.split("_")[0]
        rows += [(hand, n, r) for n, r in enumerate(read_jsonl(path), 1)]
    return rows


def to_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(CORPUS_COLUMNS))
    for col in INT_COLUMNS:
        frame[col] = frame[col].astype("Int64")
    frame["sender_has_photo"] = frame["sender_has_photo"].astype("boolean")
    return frame


def build_corpus(data_dir: Path, copies: float = 0.5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Build (training corpus, independent test set) frames from the authored files."""
    train = to_frame(build_rows(authored_rows(data_dir / "authored"), copies=copies))
    test_rows = []
    for hand, lineno, row in authored_rows(data_dir / "test"):
        base = _base_row(row, hand, f"{hand}-{lineno:04d}")
        test_rows.append(base)
    return train, to_frame(test_rows)


def read_corpus(path: Path) -> pd.DataFrame:
    """Read a corpus CSV (the columns above; metadata may be empty = unknown)."""
    frame = pd.read_csv(
        path, dtype={"text": str, "id": str}, keep_default_na=False, na_values={c: [""] for c in CORPUS_COLUMNS if c != "text"}
    )
    frame["text"] = frame["text"].fillna("")
    missing = [c for c in ("label", "text") if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}")
    bad = frame.loc[~frame["label"].isin(LABELS)]
    if len(bad):
        line = int(bad.index[0]) + 2
        raise ValueError(f"{path}: line {line}: unknown label {bad['label'].iloc[0]!r} (expected one of {list(LABELS)})")
    return frame


def frame_items(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of a corpus frame as dicts holding only the item fields."""
    cols = [c for c in ITEM_FIELDS if c in frame.columns]
    return frame[cols].to_dict("records")
