"""Simulated inboxes: the authored format is checked, rendered as LinkedIn exports, and read back labelled."""

from __future__ import annotations

import copy
import csv
import json

import pytest

from app.corpus import build_inboxes, inboxes_dir, read_labelled_export
from app.inbox import read_linkedin_export
from app.inbox_stats import format_comparison, measure_exports
from app.simulated import SourceError, load_source, parse_source, render_export, write_export
from tests.conftest import SIMULATED

EXAMPLE = json.loads((SIMULATED / "x01-1.json").read_text(encoding="utf-8"))


def test_rendering_is_deterministic():
    source = load_source(SIMULATED / "x01-1.json")
    assert render_export(source) == render_export(load_source(SIMULATED / "x01-1.json"))


def test_every_labelled_item_is_read_back_from_the_export_with_its_label(tmp_path):
    source = load_source(SIMULATED / "x01-1.json")
    write_export(source, tmp_path / "x01-1")
    examples = read_labelled_export(tmp_path / "x01-1")
    authored = [(m.text, m.label) for c in source.conversations for m in c.messages if m.label]
    authored += [(i.note, i.label) for i in source.invitations if i.incoming and i.note]
    assert sorted((ex.item.text, ex.label) for ex in examples) == sorted(authored)


def test_the_readers_see_the_conversation_around_each_message(tmp_path):
    write_export(load_source(SIMULATED / "x01-1.json"), tmp_path / "x")
    by_text = {ex.item.text: ex.item for ex in read_labelled_export(tmp_path / "x")}
    reply = by_text["ok 👍"]  # the friend's answer after the owner wrote
    assert reply.owner_messages_before == 1 and reply.sender_messages_before == 1 and reply.prior_unanswered == 0
    assert reply.is_connection is True and reply.owner_replied_after is False
    first = by_text["dei saturday cricket ah?"]
    assert first.owner_messages_before == 0 and first.owner_started is False and first.owner_replied_after is True
    bump = by_text["Bumping this to the top of your inbox :)"]
    assert bump.prior_unanswered == 1 and bump.owner_replied_after is False and "2x faster" in bump.earlier_text
    sponsored = next(it for t, it in by_text.items() if "%FIRSTNAME%" in t)
    assert sponsored.sender_name == "LinkedIn Member" and sponsored.is_connection is False


def test_invitations_without_a_note_are_skipped_with_their_reason(tmp_path):
    write_export(load_source(SIMULATED / "x01-1.json"), tmp_path / "x")
    skipped = [r.skipped for r in read_linkedin_export(tmp_path / "x") if r.ids.get("kind") == "invite" and r.item is None]
    assert skipped.count("invitation without a note") == 2 and "outgoing invitation" in skipped


@pytest.mark.parametrize(
    ("export_date", "header_tail", "quoted"),
    [
        ("2022-05-01", "SUBJECT,CONTENT,FOLDER", False),
        ("2023-06-01", "RECIPIENT PROFILE URLS,DATE,SUBJECT,CONTENT,FOLDER", False),
        ("2024-10-01", "FOLDER,IS MESSAGE DRAFT,IS CONVERSATION DRAFT", False),
        ("2026-02-01", "FOLDER,ATTACHMENTS", True),
    ],
)
def test_the_layout_follows_the_export_date(export_date, header_tail, quoted):
    obj = copy.deepcopy(EXAMPLE)
    obj["export_date"] = export_date
    for conv in obj["conversations"]:
        for m in conv["messages"]:
            m["at"] = "2021-01-01 10:00" if m["at"] > export_date else m["at"]
    obj["invitations"] = [i for i in obj["invitations"] if i["at"] < export_date]
    files = render_export(parse_source(obj))
    header = files["messages.csv"].splitlines()[0]
    assert header.replace('"', "").endswith(header_tail)
    assert header.startswith('"') == quoted


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda o: o["conversations"][0]["messages"][0].pop("label"), "label must be one of"),
        (lambda o: o["conversations"][0]["messages"][1].update(label="genuine"), "carry no label"),
        (lambda o: o["conversations"][0]["messages"][0].update({"from": "nobody"}), "neither 'me' nor"),
        (lambda o: o["conversations"][0]["messages"].reverse(), "not in time order"),
        (lambda o: o["conversations"][0]["messages"][0].update(at="2030-01-01 10:00"), "after the export date"),
        (lambda o: o["invitations"][0].update(label="maybe"), "label must be one of"),
        (lambda o: o.pop("owner"), "missing top-level key 'owner'"),
        (lambda o: o.update(conversations={}), r"x01-1.json: conversations: expected a list"),
        (lambda o: o["conversations"].insert(0, "hi"), r"conversations\[0\]: expected an object"),
        (lambda o: o["conversations"][0]["messages"].insert(1, 7), r"conversations\[0\].messages\[1\]: expected an object"),
        (lambda o: o["invitations"].append(None), r"invitations\[\d+\]: expected an object"),
        (
            lambda o: o["conversations"][0]["messages"][0].update(text="see you at 5 "),
            r"conversations\[0\].messages\[0\].text: starts or ends with white space",
        ),
    ],
)
def test_a_broken_source_is_refused_naming_the_place(change, message):
    obj = copy.deepcopy(EXAMPLE)
    change(obj)
    with pytest.raises(SourceError, match=message):
        parse_source(obj, "x01-1.json")


def test_build_splits_test_hands_from_training_hands(tiny_data_dir):
    root = inboxes_dir(tiny_data_dir)
    assert sorted(p.name for p in (root / "train").iterdir()) == ["x01-1", "x02-1"]
    assert [p.name for p in (root / "test").iterdir()] == ["tx1-1"]
    assert build_inboxes(tiny_data_dir) == {"train": 2, "test": 1}  # rebuilding replaces, never duplicates


def test_a_label_that_points_at_other_text_is_an_error(tmp_path):
    write_export(load_source(SIMULATED / "x01-1.json"), tmp_path / "x")
    path = tmp_path / "x" / "labels.csv"
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    rows[0]["line"], rows[1]["line"] = rows[1]["line"], rows[0]["line"]
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(ValueError, match="not the labelled text"):
        read_labelled_export(tmp_path / "x")


def test_the_shape_table_measures_what_field_notes_measure(tiny_data_dir):
    shape = measure_exports(sorted((inboxes_dir(tiny_data_dir) / "train").iterdir()))
    table = shape.table()
    assert len(shape.inbound) == 22  # 9 + 13 inbound messages
    assert table['sender shown as "LinkedIn Member" or blank'] == pytest.approx(1 / 22)
    assert table["incoming invitations that carry a note"] == pytest.approx(3 / 7)
    assert "| length deciles (characters) |" in format_comparison(shape)
