"""Batch scoring: counts, output and error files, the scoring core in chunks, parallel workers, the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from app.artifact import save_model
from app.batch import score_chunk, score_file
from app.cli import main
from app.items import Item
from app.output import SCORE_COLUMNS, errors_path, reason_cell
from app.scoring import Scorer
from app.sources import OWN_MESSAGE

LINKEDIN = Path(__file__).parent / "fixtures" / "linkedin"
EXPORT = LINKEDIN / "export"

PLAIN = (
    "id,text,kind,sender_name,sender_connections,campaign,verdict\n"
    "a1,Hi Dana - we met at PyCon last week,invite,Priya,120,spring,keep\n"
    'a2,"Our agency helps SaaS teams grow.\nBook a quick call: https://calendly.com/sam",message,Sam,lots,spring,x\n'
    "a3,Congrats on the new role!,message,Maria,300,,\n"
    "a4,Too,many,fields,here,,,,\n"
    "a5,Earn $500 a day from home - WhatsApp me now,message,Kate,3,summer,\n"
)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def assert_balanced(result) -> None:
    assert result.read == result.scored + result.n_skipped + result.failed


@pytest.fixture(scope="module")
def scorer(tiny_model):
    return Scorer(tiny_model)


@pytest.fixture()
def model_store(tiny_model, tmp_path):
    store = tmp_path / "store"
    save_model(tiny_model, store, tiny_model.manifest)
    return store


def test_plain_csv_rows_errors_and_carried_columns(scorer, tmp_path):
    inbox = tmp_path / "inbox.csv"
    inbox.write_text(PLAIN, encoding="utf-8")
    out = tmp_path / "scored.csv"
    result = score_file(inbox, out, scorer=scorer, jobs=1, progress=False)
    assert (result.read, result.scored, result.n_skipped, result.failed) == (5, 3, 0, 2)
    assert_balanced(result)
    rows = read_csv(out)
    columns = list(rows[0])
    assert columns[:7] == ["file", "line", "id", "kind", "sender_name", "sender_profile_url", "sent_at"]
    assert columns[7:9] == ["campaign", "input_verdict"]  # an input column named like an output one is renamed
    assert columns[9:] == list(SCORE_COLUMNS)
    assert [r["id"] for r in rows] == ["a1", "a3", "a5"]
    assert [r["line"] for r in rows] == ["2", "5", "7"]
    assert rows[0]["campaign"] == "spring" and rows[0]["input_verdict"] == "keep"
    for r in rows:
        p = [float(r[c]) for c in ("p_genuine", "p_sales_pitch", "p_spam")]
        assert abs(sum(p) - 1) < 1e-3 and r["verdict"] in {"genuine", "sales_pitch", "spam"}
        assert float(r["confidence"]) == max(p) or r["needs_review"] == "true"
        assert r["needs_review"] in {"true", "false"} and r["summary"].startswith("Looks like")
    errors = read_csv(errors_path(out))
    assert errors == [
        {
            "file": str(inbox),
            "line": "3",
            "id": "a2",
            "reason": "line 3: sender_connections: expected a whole number, got 'lots'",
        },
        {"file": str(inbox), "line": "6", "id": "a4", "reason": "line 6: the row has 9 fields, the header has 7"},
    ]
    assert result.errors_file == errors_path(out)


def test_jsonl_output_matches_the_single_item_path(scorer, tmp_path):
    inbox = tmp_path / "inbox.csv"
    inbox.write_text(PLAIN, encoding="utf-8")
    out = tmp_path / "scored.jsonl"
    score_file(inbox, out, scorer=scorer, jobs=1, progress=False)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["a1", "a3", "a5"]
    texts = {
        "a1": ("Hi Dana - we met at PyCon last week", "invite", "Priya", 120),
        "a5": ("Earn $500 a day from home - WhatsApp me now", "message", "Kate", 3),
    }
    for r in rows:
        if r["id"] not in texts:
            continue
        text, kind, sender, connections = texts[r["id"]]
        v = scorer.score([Item(text=text, kind=kind, sender_name=sender, sender_connections=connections)])[0]
        assert r["verdict"] == v.verdict and r["needs_review"] is v.needs_review and r["summary"] == v.summary
        assert r["p_spam"] == round(v.scores["spam"], 4) and r["confidence"] == round(v.confidence, 4)
        assert [r[f"reason_{i}"] for i in range(1, len(v.reasons) + 1)] == [reason_cell(c) for c in v.reasons]
        assert r["snippet"] == text and r["source"] == "model"


def test_a_chunk_scores_like_its_items_one_by_one(scorer):
    items = [Item(text=t) for t in TEXTS] + [Item(text="<br>&amp;  \t\n 🙂 İstanbul ﬁ"), Item(text="x", kind="invite")]
    together = score_chunk(scorer, items)
    alone = [score_chunk(scorer, [it])[0] for it in items]
    assert together == alone


def test_a_broken_item_fails_alone(scorer):
    items = [Item(text="hello there"), Item(text="hi"), Item(text=None), Item(text="Book a demo with us")]  # type: ignore[arg-type]
    cells = score_chunk(scorer, items)
    assert isinstance(cells[2], str) and cells[2].startswith("could not score")
    assert [c for i, c in enumerate(cells) if i != 2] == score_chunk(scorer, [items[i] for i in (0, 1, 3)])


def test_linkedin_export_through_the_cli_with_summary(model_store, tmp_path, capsys):
    out = tmp_path / "export.csv"
    code = main(["score", str(EXPORT), "-o", str(out), "--jobs", "1", "--model", str(model_store), "--summary"])
    assert code == 0
    printed = capsys.readouterr()
    assert printed.err == ""  # no progress bar when stderr is not a terminal
    lines = printed.out.splitlines()
    assert lines[0] == (
        "read 17, scored 8, skipped 8 (own message 2, draft 2, AI-coach file 2, invitation without a note 1, "
        "outgoing invitation 1), "
        f"failed 1 (see {errors_path(out)})"
    )
    assert lines[1].startswith("encoding: ") and f"{EXPORT / 'messages.csv'} utf-8" in lines[1]
    assert lines[2] == "account owner: Dana Reyes (inferred from Invitations.csv)"
    assert any(line.startswith("verdicts: genuine ") for line in lines)
    assert any(line.startswith("senders with the most sales pitches") for line in lines)
    rows = read_csv(out)
    assert len(rows) == 8
    assert list(rows[0])[:7] == ["file", "line", "kind", "conversation_id", "sender_name", "sender_profile_url", "sent_at"]
    assert rows[0]["sender_name"] == "Sam Patel" and rows[0]["conversation_id"] == "2-QUFBQUFBQUE="
    assert {r["kind"] for r in rows} == {"message", "invite"}
    errors = read_csv(errors_path(out))
    assert [(e["line"], e["reason"]) for e in errors] == [("13", "line 13: DATE: cannot read the date 'yesterday'")]


def test_me_and_format_flags_and_the_exit_status(model_store, tmp_path, capsys):
    out = tmp_path / "me.jsonl"
    args = ["score", str(EXPORT / "messages.csv"), "-o", str(out), "--jobs", "1", "--model", str(model_store), "--quiet"]
    assert main([*args, "--me", "Sam Patel", "--format", "linkedin"]) == 0
    assert "account owner: Sam Patel (given with --me)" in capsys.readouterr().out
    senders = {json.loads(line)["sender_name"] for line in out.read_text().splitlines()}
    assert "Sam Patel" not in senders and "Dana Reyes" in senders

    own_only = tmp_path / "messages.csv"
    own_only.write_text(
        (EXPORT / "messages.csv").read_text().splitlines()[0]
        + "\n"
        + (EXPORT / "messages.csv").read_text().splitlines()[2]
        + "\n"
    )
    assert (
        main(
            [
                "score",
                str(own_only),
                "-o",
                str(tmp_path / "x.csv"),
                "--jobs",
                "1",
                "--model",
                str(model_store),
                "--me",
                "Dana Reyes",
            ]
        )
        == 1
    )
    captured = capsys.readouterr()
    assert "read 1, scored 0, skipped 1 (own message 1), failed 0" in captured.out and "nothing could be scored" in captured.err

    empty = tmp_path / "empty.csv"
    empty.write_text("text\n")
    assert main(["score", str(empty), "-o", str(tmp_path / "y.csv"), "--jobs", "1", "--model", str(model_store)]) == 1
    assert "nothing could be read" in capsys.readouterr().err
    assert main(["score", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "z.csv"), "--model", str(model_store)]) == 2
    assert main(["score", str(empty), "-o", str(tmp_path / "z.txt"), "--model", str(model_store)]) == 2
    assert "must end in .csv or .jsonl" in capsys.readouterr().err


def test_two_worker_processes_give_the_same_output(model_store, tmp_path):
    inbox = tmp_path / "inbox.csv"
    lines = [PLAIN.splitlines()[0]] + [f'r{i},"{t}",message,S{i % 7},{i},c{i % 3},' for i, t in enumerate(TEXTS * 15)]
    inbox.write_text("\n".join(lines) + "\n", encoding="utf-8")
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    r1 = score_file(inbox, one, model_dir=model_store, jobs=1, chunk_size=16, progress=False, summary=True)
    r2 = score_file([inbox], two, model_dir=model_store, jobs=2, chunk_size=16, progress=False, summary=True)
    assert r1.scored == r2.scored == len(TEXTS) * 15 and r2.jobs == 2
    assert one.read_text() == two.read_text()
    assert r1.verdicts == r2.verdicts and r1.top_senders == r2.top_senders
    assert not errors_path(two).exists()


TEXTS = (
    "Hi Dana, great meeting you at the meetup yesterday!",
    "We help B2B SaaS companies book 30 more demos a month. Free audit?",
    "Dear, I am a widow looking for honest friendship. Write to my whatsapp",
    "Congrats on the new role!",
)


def test_stale_errors_file_is_removed_and_long_texts_fail(scorer, tmp_path):
    inbox = tmp_path / "inbox.csv"
    inbox.write_text("text\nshort and fine\n" + "x" * 50 + "\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    errors_path(out).write_text("old")
    result = score_file(inbox, out, scorer=scorer, jobs=1, progress=False, max_text_chars=40)
    assert (result.scored, result.failed) == (1, 1)
    assert "50 characters, the limit is 40" in read_csv(errors_path(out))[0]["reason"]
    result = score_file(inbox, out, scorer=scorer, jobs=1, progress=False)
    assert result.failed == 0 and not errors_path(out).exists()


def test_skipped_rows_are_counted_by_reason(scorer, tmp_path):
    result = score_file(EXPORT / "messages.csv", tmp_path / "o.csv", scorer=scorer, jobs=1, progress=False)
    assert result.skipped[OWN_MESSAGE] == 2 and result.read == 12
    assert_balanced(result)


def test_progress_bar_on_request_and_an_uploaded_file_object(scorer, tmp_path):
    import io

    stream = io.StringIO()
    upload = io.BytesIO(PLAIN.encode("cp1252"))
    out = tmp_path / "o.jsonl"
    result = score_file(upload, out, scorer=scorer, jobs=1, progress=True, progress_file=stream)
    assert "rows" in stream.getvalue() and result.read == 5
    assert result.encodings == {"upload": "utf-8"}  # plain ASCII is valid UTF-8
    assert json.loads(out.read_text().splitlines()[0])["file"] == "upload"
    with pytest.raises(TypeError, match="binary mode"):
        score_file(io.StringIO(PLAIN), out, scorer=scorer, jobs=1)
    with pytest.raises(ValueError, match="also an input"):
        score_file(out, out, scorer=scorer, jobs=1)
