"""Reading inboxes: plain CSV, JSONL and every LinkedIn export variant in the format notes."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from app.inbox import (
    ReadReport,
    detect_format,
    read_items,
    read_jsonl,
    read_linkedin_export,
    read_plain_csv,
)
from app.linkedin import parse_export_time
from app.sources import COACH_FILE, DRAFT, EMPTY_MESSAGE, NO_NOTE, OUTGOING_INVITATION, OWN_MESSAGE

LINKEDIN = Path(__file__).parent / "fixtures" / "linkedin"
EXPORT = LINKEDIN / "export"
VARIANTS = LINKEDIN / "variants"


def outcome(records) -> tuple[int, int, Counter, int]:
    """(read, to score, skipped by reason, failed)."""
    records = list(records)
    skipped = Counter(r.skipped for r in records if r.skipped)
    failed = sum(1 for r in records if r.error)
    scored = sum(1 for r in records if r.item is not None)
    assert len(records) == scored + sum(skipped.values()) + failed
    return len(records), scored, skipped, failed


def by_line(records, name: str | None = None) -> dict[int, object]:
    return {r.line: r for r in records if name is None or Path(r.file.split(":")[-1]).name == name}


# --------------------------------------------------------------------------------------
# LinkedIn export
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "read", "scored", "skipped", "owner"),
    [
        ("messages_2018.csv", 4, 3, {OWN_MESSAGE: 1}, "Dana Reyes"),
        ("messages_9col.csv", 4, 3, {OWN_MESSAGE: 1}, "Dana Reyes"),
        ("messages_10col.csv", 3, 2, {OWN_MESSAGE: 1}, "Reyes, Dana"),
        ("messages_11col.csv", 3, 1, {OWN_MESSAGE: 1, EMPTY_MESSAGE: 1}, "Dana Reyes"),
        ("Invitations_5col.csv", 3, 1, {OUTGOING_INVITATION: 1, NO_NOTE: 1}, "Dana Reyes"),
    ],
)
def test_each_export_variant_is_read_by_column_names(name, read, scored, skipped, owner):
    report = ReadReport()
    inbox = read_items(VARIANTS / name, report=report)
    assert inbox.formats == ["linkedin"]
    assert outcome(inbox) == (read, scored, Counter(skipped), 0)
    assert report.owner == owner
    assert report.encodings == {str(VARIANTS / name): "utf-8"}


def test_the_12_column_export_folder_with_drafts_sponsored_coach_files_and_context():
    report = ReadReport()
    records = list(read_items(EXPORT, report=report))
    read, scored, skipped, failed = outcome(records)
    assert (read, scored, failed) == (17, 8, 1)
    assert skipped == Counter({OWN_MESSAGE: 2, DRAFT: 2, OUTGOING_INVITATION: 1, NO_NOTE: 1, COACH_FILE: 2})
    assert report.owner == "Dana Reyes" and "Invitations.csv" in report.owner_how
    assert not any(name.endswith(("Profile.csv",)) for name in report.encodings)  # unrelated files are not read

    messages = by_line(records, "messages.csv")
    # Sam's three messages before Dana's reply: 0, 1 and 2 unanswered; after the reply: 0 again.
    assert [messages[line].item.prior_unanswered for line in (6, 5, 4, 2)] == [0, 1, 2, 0]
    # Sam connected on 01 Mar 2024 (Connections.csv, with its preamble) and wrote at 10:00 that day.
    first = messages[6]
    assert first.item.minutes_since_connected == 600
    assert first.ids["sender_profile_url"] == "https://www.linkedin.com/in/sam-patel"
    assert first.ids["conversation_id"] == "2-QUFBQUFBQUE="
    assert first.ids["sent_at"] == "2024-03-01T10:00:00+00:00"
    assert first.item.recipient_name == "Dana Reyes"

    sponsored = messages[7].item
    assert sponsored.sender_name == "LinkedIn Member"  # kept: the anonymous_sender signal reads it
    assert "%FIRSTNAME%" in sponsored.text and "%COMPANYNAME%" in sponsored.text
    assert messages[8].skipped == DRAFT and messages[12].skipped == DRAFT
    assert messages[9].skipped == OWN_MESSAGE
    assert messages[13].error.startswith("DATE: cannot read the date 'yesterday'")
    assert messages[2].ids["sender_name"] == "Sam Patel"

    invitations = by_line(records, "Invitations.csv")
    assert invitations[2].item.kind == "invite" and "PyData" in invitations[2].item.text
    assert invitations[3].skipped == NO_NOTE  # nothing to judge, counted with its reason
    assert invitations[3].ids["sent_at"] == "2024-03-03T07:02:00+00:00"
    assert invitations[4].skipped == OUTGOING_INVITATION


def test_html_and_entities_reach_the_model_and_names_are_decoded():
    records = by_line(read_items(EXPORT), "messages.csv")
    maria = records[10]
    assert maria.item.sender_name == "Maria Lopez"
    assert "&rsquo;" in maria.item.text  # the featurizer decodes entities; spans point into this text
    from app.text import prepare

    assert "it’s been ages" in prepare(maria.item).raw


def test_me_overrides_the_inferred_owner_by_name_or_profile_url():
    for me in ("Sam Patel", "https://www.linkedin.com/in/sam-patel/"):
        report = ReadReport()
        records = by_line(read_items(EXPORT / "messages.csv", me=me, report=report))
        assert report.owner_how == "given with --me"
        assert all(records[line].skipped == OWN_MESSAGE for line in (2, 4, 5, 6))
        assert records[3].item is not None and records[3].item.sender_name == "Dana Reyes"
        assert records[9].item is not None  # Dana's message to Maria is now inbound


def test_owner_is_inferred_from_messages_alone_and_the_group_name_with_a_comma():
    report = ReadReport()
    records = by_line(read_items(VARIANTS / "messages_10col.csv", report=report))
    assert report.owner == "Reyes, Dana" and report.owner_how.startswith("inferred from messages")
    assert records[3].skipped == OWN_MESSAGE
    assert records[2].item.sender_name == "Jo Park"


def test_connections_without_the_preamble_given_next_to_messages():
    records = by_line(read_items([EXPORT / "messages.csv", VARIANTS / "Connections_plain.csv"]))
    assert records[6].item.minutes_since_connected == 600
    assert records[10].item.minutes_since_connected is None  # Maria is not in this Connections file


def test_quoted_line_breaks_keep_line_numbers_and_text():
    records = by_line(read_items(VARIANTS / "messages_11col.csv"))
    assert sorted(records) == [2, 3, 10]
    assert records[3].item.text.startswith("Hi Dana,\n\nGreat meeting you")
    assert records[2].skipped == EMPTY_MESSAGE  # an attachment without text


def test_a_zip_built_from_the_folder_reads_like_the_folder(tmp_path):
    archive = tmp_path / "Complete_LinkedInDataExport_08-26-2025.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(EXPORT.iterdir()):
            zf.write(path, f"Complete_LinkedInDataExport_08-26-2025/{path.name}")
        zf.writestr("__MACOSX/._messages.csv", b"\x00\x05junk")
    assert detect_format(archive) == "linkedin"
    report = ReadReport()
    zipped = list(read_items(archive, report=report))
    folder = list(read_items(EXPORT))
    assert [(r.line, r.skipped, r.error, r.item) for r in zipped] == [(r.line, r.skipped, r.error, r.item) for r in folder]
    assert zipped[0].file == f"{archive.name}:Complete_LinkedInDataExport_08-26-2025/messages.csv"
    assert report.owner == "Dana Reyes"
    # and as an uploaded file object
    with open(archive, "rb") as fh:
        assert outcome(read_linkedin_export(fh)) == outcome(folder)


def test_bom_crlf_and_cp1252_are_read_and_reported(tmp_path):
    text = (EXPORT / "messages.csv").read_text(encoding="utf-8").replace("See you at the café.", "Grüße – see you at the café…")
    bom = tmp_path / "bom" / "messages.csv"
    cp = tmp_path / "cp" / "messages.csv"
    bom.parent.mkdir()
    cp.parent.mkdir()
    bom.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
    cp.write_bytes(text.encode("cp1252"))
    expected = outcome(read_items(EXPORT / "messages.csv", me="Sam Patel"))
    for path, encoding in ((bom, "utf-8 with BOM"), (cp, "utf-8 (1 line read as cp1252: 9)")):
        report = ReadReport()
        records = list(read_items(path, me="Sam Patel", report=report))
        assert report.encodings == {str(path): encoding}
        assert outcome(records) == expected
        assert by_line(records)[9].item.text == "Yes! Thursday works. Grüße – see you at the café…"
        assert by_line(records)[2].ids["conversation_id"] == "2-QUFBQUFBQUE="  # the BOM is not part of a name


def test_crlf_invitations_with_the_profile_url_columns(tmp_path):
    path = tmp_path / "Invitations.csv"
    path.write_bytes((EXPORT / "Invitations.csv").read_bytes().replace(b"\n", b"\r\n"))
    records = by_line(read_items(path))
    assert records[2].ids["sender_profile_url"] == "https://www.linkedin.com/in/priya-nair"
    assert records[4].skipped == OUTGOING_INVITATION
    assert records[2].ids["sent_at"] == "2024-03-05T16:15:00+00:00"


def test_coach_files_and_no_conversations_found():
    assert outcome(read_items(EXPORT / "guide_messages.csv")) == (2, 0, Counter({COACH_FILE: 2}), 0)
    assert detect_format(EXPORT / "LearningCoachMessages.csv") == "linkedin"
    assert outcome(read_items(EXPORT / "LearningCoachMessages.csv")) == (0, 0, Counter(), 0)


def test_export_times():
    assert parse_export_time("2024-03-01 10:00:00 UTC", "DATE").isoformat() == "2024-03-01T10:00:00+00:00"
    assert parse_export_time("3/5/24, 4:15 PM", "Sent At").isoformat() == "2024-03-05T16:15:00+00:00"
    assert parse_export_time("3/5/24, 4:15\u202fPM", "Sent At").hour == 16
    assert parse_export_time("08 Feb 2023", "Connected On").isoformat() == "2023-02-08T00:00:00+00:00"
    assert parse_export_time("", "DATE") is None
    with pytest.raises(ValueError, match="DATE"):
        parse_export_time("soon", "DATE")


# --------------------------------------------------------------------------------------
# Plain CSV and JSONL
# --------------------------------------------------------------------------------------

PLAIN = (
    "id,text,kind,sender_name,sender_connections,sent_at,connected_at,campaign,Notes\n"
    "a1,Hi Dana - we met at PyCon,invite,Priya,120,2024-03-01T10:00:00Z,,spring,first\n"
    'a2,"Our agency helps you grow\nBook a call",message,Sam,lots,,,spring,bad count\n'
    "a3,Hello,message,,,2024-03-01T12:00:00Z,2024-03-01T10:30:00Z,,\n"
    "a4,Too,many,fields,here,,,,,,\n"
    "\n"
    "a5,,message,,,,,,empty text\n"
)


def test_plain_csv_carries_unknown_columns_and_reports_bad_rows(tmp_path):
    path = tmp_path / "inbox.csv"
    path.write_text(PLAIN, encoding="utf-8")
    assert detect_format(path) == "csv"
    inbox = read_items(path)
    assert inbox.extra_columns == ["campaign", "Notes"]
    assert inbox.id_columns == ("file", "line", "id", "kind", "sender_name", "sender_profile_url", "sent_at")
    records = by_line(inbox)
    assert sorted(records) == [2, 3, 5, 6, 8]
    assert records[2].item.kind == "invite" and records[2].extra == {"campaign": "spring", "Notes": "first"}
    assert records[3].error == "sender_connections: expected a whole number, got 'lots'"
    assert records[5].item.minutes_since_connected == 90
    assert records[6].error == "the row has 11 fields, the header has 9"
    assert records[8].error.startswith("text: empty") and records[8].ids["id"] == "a5"


def test_plain_csv_from_a_file_object_and_without_a_text_column(tmp_path):
    upload = io.BytesIO(("\ufeff" + PLAIN).encode("utf-8"))
    report = ReadReport()
    records = list(read_items(upload, report=report))
    assert outcome(records)[:2] == (5, 2)
    assert records[0].file == "upload" and report.encodings == {"upload": "utf-8 with BOM"}
    assert outcome(read_plain_csv(io.BytesIO(PLAIN.encode("cp1252")))) == outcome(records)
    with pytest.raises(ValueError, match="cannot tell the format"):
        read_items(io.BytesIO(b"id,body\n1,hello\n"))
    with pytest.raises(ValueError, match="no 'text' column"):
        read_items(io.BytesIO(b"id,body\n1,hello\n"), format="csv")
    with pytest.raises(FileNotFoundError):
        read_items(tmp_path / "missing.csv")


def jsonl_lines() -> list[str]:
    good = {
        "id": "m1",
        "kind": "message",
        "text": "Just following up again - any thoughts?",
        "sender": {"name": "Sam Patel", "profile_url": "https://www.linkedin.com/in/sam-patel", "connections": 500},
        "recipient": {"name": "Dana Reyes"},
        "sent_at": "2024-03-08T09:00:00Z",
        "connected_at": "2024-03-08T08:00:00Z",
        "thread": [
            {"direction": "inbound", "text": "Hi!", "sent_at": "2024-03-01T09:00:00Z"},
            {"direction": "outbound", "text": "Not now", "sent_at": "2024-03-02T09:00:00Z"},
            {"direction": "inbound", "text": "Bump", "sent_at": "2024-03-04T09:00:00Z"},
            {"direction": "inbound", "text": "Bump again", "sent_at": "2024-03-06T09:00:00Z"},
        ],
    }
    return [
        json.dumps(good),
        "",
        "{not json",
        json.dumps({"id": "m3", "text": "hi", "thread": [{"direction": "sideways"}]}),
        json.dumps({"id": "m4", "kind": "invite", "text": ""}),
        json.dumps(["a", "list"]),
        json.dumps({"id": "m6", "text": "hello", "sent_at": "last tuesday"}),
        json.dumps({"id": "m7"}),
    ]


def test_jsonl_thread_gives_prior_unanswered_and_bad_lines_fail(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(jsonl_lines()) + "\n", encoding="utf-8")
    assert detect_format(path) == "jsonl"
    records = by_line(read_jsonl(path))
    assert sorted(records) == [1, 3, 4, 5, 6, 7, 8]
    first = records[1]
    assert first.item.prior_unanswered == 2 and first.item.minutes_since_connected == 60
    assert first.item.sender_connections == 500 and first.item.recipient_name == "Dana Reyes"
    assert first.ids == {
        "file": str(path),
        "line": 1,
        "id": "m1",
        "kind": "message",
        "sender_name": "Sam Patel",
        "sender_profile_url": "https://www.linkedin.com/in/sam-patel",
        "sent_at": "2024-03-08T09:00:00Z",
    }
    assert records[3].error.startswith("not valid JSON")
    assert "direction" in records[4].error
    assert records[5].error.startswith("text: empty")
    assert records[6].error == "expected a JSON object"
    assert records[7].error.startswith("sent_at:")
    assert records[8].error == "text: missing"


def test_several_inputs_in_one_call_and_a_folder_that_is_not_an_export(tmp_path):
    plain = tmp_path / "a.csv"
    plain.write_text("text,segment\nhello there,x\n", encoding="utf-8")
    inbox = read_items([plain, EXPORT])
    assert inbox.formats == ["csv", "linkedin"]
    assert inbox.extra_columns == ["segment"]
    assert "conversation_id" in inbox.id_columns and "id" in inbox.id_columns
    assert outcome(inbox)[0] == 1 + 17
    other = tmp_path / "folder"
    other.mkdir()
    with pytest.raises(ValueError, match="folder"):
        read_items(other, format="csv")
    shutil.copy(EXPORT / "Profile.csv", other / "Profile.csv")
    report = ReadReport()
    assert list(read_items(other, report=report)) == []
    assert report.notes and "no messages.csv" in report.notes[0]


def test_jsonl_lines_the_parser_cannot_take_are_failed_rows_and_reading_goes_on(tmp_path):
    path = tmp_path / "odd.jsonl"
    deep = '{"text": "b", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    digits = '{"text": "c", "x": ' + "9" * 5_000 + "}"
    huge = '{"text": "d", "sender": {"connections": 1e400}}'
    path.write_text("\n".join(['{"text": "a"}', deep, digits, huge, '{"text": "e"}']) + "\n", encoding="utf-8")
    records = by_line(read_jsonl(path))
    assert [records[n].item.text for n in (1, 5)] == ["a", "e"]
    assert all(records[n].item is None and records[n].error for n in (2, 3, 4))
    assert "connections" in records[4].error
