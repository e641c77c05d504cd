"""One scoring core: the same file through every way in gives identical rows.

`triage score`, the CSV upload, /v1/score/batch, /v1/score one item at a time and the
Scorer itself, all with the same allow/deny lists, must agree on every output column.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api import create_app
from app.artifact import save_model
from app.cli import main
from app.inbox import read_items
from app.lists import load_lists
from app.output import SCORE_COLUMNS, csv_safe, reason_cell, score_cells
from app.scoring import Scorer
from app.settings import Settings

ROWS = [
    ("Great meeting you at the PyCon sprint, let's stay in touch!", "invite", "Ana Ruiz", ""),
    ("We help SaaS teams book 30% more demos. 15 minutes this week? calendly.com/x/15", "message", "Sam Lee", ""),
    ("Hello dear, can we be friends? Add me on WhatsApp", "message", "Linda Harper", ""),
    ("ok 👍", "message", "Karthik Raman", ""),
    ("Get guaranteed returns on crypto today", "message", "Max Stone", ""),  # the deny list's keyword
    ("Congrats on the new role!", "message", "Trusted Friend", ""),  # the allow list's name
    ('=HYPERLINK("http://x.example","click")', "message", "+Formula Sender", "@risky"),
]
LISTS = {"allow": {"names": ["Trusted Friend"]}, "deny": {"keywords": ["guaranteed returns"]}}


def comparable(cells: list) -> list:
    """Score cells as a CSV holds them (text, with the spreadsheet-safe quote), so every path compares."""
    return ["" if v is None else str(csv_safe(v)) for v in cells]


@pytest.fixture()
def setup(tiny_model, tmp_path):
    store = tmp_path / "model"
    save_model(tiny_model, store, tiny_model.manifest)
    lists = tmp_path / "lists.json"
    lists.write_text(json.dumps(LISTS), encoding="utf-8")
    inbox = tmp_path / "inbox.csv"
    with open(inbox, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text", "kind", "sender_name", "note"])
        writer.writerows([(f"r{i}", *row) for i, row in enumerate(ROWS)])
    return store, lists, inbox


def test_every_path_gives_the_same_rows(setup, tmp_path):
    store, lists_file, inbox = setup
    scorer = Scorer(load_store(store), load_lists(lists_file))
    items = [r.item for r in read_items(inbox)]
    expected = [comparable(score_cells(v, it.text)) for v, it in zip(scorer.score(items), items, strict=True)]
    assert {row[SCORE_COLUMNS.index("source")] for row in expected} == {"model", "allow_list", "deny_list"}

    out = tmp_path / "scored.csv"
    assert main(["score", str(inbox), "-o", str(out), "--model", str(store), "--lists", str(lists_file), "--jobs", "1"]) == 0
    with open(out, encoding="utf-8", newline="") as fh:
        cli_rows = [[row[c] for c in SCORE_COLUMNS] for row in csv.DictReader(fh)]

    settings = Settings(model_dir=store, lists_file=lists_file, db_path=tmp_path / "f.db", reload_poll_seconds=0)
    with TestClient(create_app(settings)) as client:
        upload = client.post("/v1/score/csv", files={"file": ("inbox.csv", inbox.read_bytes(), "text/csv")})
        upload_rows = [[row[c] for c in SCORE_COLUMNS] for row in csv.DictReader(io.StringIO(upload.text))]
        payload = [{"text": t, "kind": k, "sender": {"name": n}} for t, k, n, _ in ROWS]
        batch = client.post("/v1/score/batch", json={"items": payload}).json()["items"]
        single = [client.post("/v1/score", json=p).json() for p in payload]

    assert cli_rows == expected
    assert upload_rows == expected
    for answers in (batch, single):
        assert [comparable(api_cells(v, t)) for v, (t, *_rest) in zip(answers, ROWS, strict=True)] == expected


def api_cells(answer: dict, text: str) -> list:
    """The score columns rebuilt from an API answer, the way `score_cells` builds them from a Verdict."""
    from app.model import Reason, Span, Verdict

    reasons = tuple(
        Reason(r["feature"], r["contribution"], r["description"], tuple(Span(**s) for s in r["spans"])) for r in answer["reasons"]
    )
    verdict = Verdict(
        answer["verdict"],
        answer["confidence"],
        answer["scores"],
        answer["needs_review"],
        reasons,
        answer["summary"],
        answer["model_version"],
        answer["source"],
    )
    cells = score_cells(verdict, text)
    assert [reason_cell(r) for r in reasons[:3]] == [c for c in cells[8:11] if c]
    return cells


def test_csv_output_is_safe_to_open_in_a_spreadsheet(setup, tmp_path):
    store, _lists_file, inbox = setup
    out = tmp_path / "scored.csv"
    assert main(["score", str(inbox), "-o", str(out), "--model", str(store), "--jobs", "1"]) == 0
    raw = out.read_bytes()
    with open(out, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    last = rows[-1]
    assert last["sender_name"] == "'+Formula Sender" and last["note"] == "'@risky" and last["snippet"].startswith("'=HYPERLINK")
    assert all(not v.startswith(("=", "+", "-", "@")) for row in rows for v in row.values())
    assert b"\r\n" in raw  # RFC 4180 records: a bare carriage return inside a cell is quoted, never a row break


def load_store(store: Path):
    from app.artifact import load_model

    return load_model(store)
