"""Hardening: no input can stall, exhaust or silently lose rows; a model store that trusts nothing unchecked."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import threading
import time
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api import create_app
from app.artifact import MANIFEST_FILE, POINTER_FILE, VERSIONS_DIR, ModelError, load_model, save_model
from app.cli import main
from app.inbox import LimitExceeded, Limits, ReadReport, read_items
from app.settings import Settings

HEADER = "CONVERSATION ID,CONVERSATION TITLE,FROM,SENDER PROFILE URL,TO,DATE,SUBJECT,CONTENT,FOLDER\n"


def rows_of(data: bytes, name: str = "in.csv", **limits) -> tuple[list, ReadReport]:
    upload = io.BytesIO(data)
    upload.name = name
    report = ReadReport()
    return list(read_items(upload, limits=Limits(**limits), report=report)), report


# --------------------------------------------------------------------------------------
# Rows are never lost
# --------------------------------------------------------------------------------------


def test_a_quote_that_never_closes_loses_no_row():
    records, _ = rows_of(b'id,text\n1,hello\n2,"never closes\n3,row three\n4,row four\n')
    by_line = {r.line: r for r in records}
    assert sorted(by_line) == [2, 3, 4, 5]
    assert by_line[3].error.startswith("a quoted field opened on line 3 never closes")
    assert [by_line[n].item.text for n in (2, 4, 5)] == ["hello", "row three", "row four"]


def test_a_quote_swallowing_too_many_lines_is_cut_and_reading_resumes():
    body = b'id,text\n1,"opens here\n' + b"".join(b"%d,line %d\n" % (i, i) for i in range(2, 12))
    records, _ = rows_of(body, record_lines=5)
    assert records[0].line == 2 and "does not close within 5 lines" in records[0].error
    assert [r.item.text for r in records[1:]] == [f"line {i}" for i in range(2, 12)]


def test_legitimate_multi_line_records_stay_whole():
    records, _ = rows_of(b'id,text\n1,"line one\nline two\n""quoted"" line three"\n2,next\n')
    assert [r.item.text for r in records] == ['line one\nline two\n"quoted" line three', "next"]
    assert [r.line for r in records] == [2, 5]


def test_each_line_is_decoded_on_its_own_and_fallbacks_are_reported():
    data = "id,text\n1,Grüße aus Köln\n".encode() + b"2,caf\xe9 cr\xe8me\n" + "3,naïve ☕\n".encode()
    records, report = rows_of(data, "mixed.csv")
    assert [r.item.text for r in records] == ["Grüße aus Köln", "café crème", "naïve ☕"]
    assert report.fallback_lines == {"mixed.csv": [3]} and "1 line read as cp1252: 3" in report.encodings["mixed.csv"]


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be"])
def test_utf16_files_are_recognised_by_their_byte_order_mark(codec):
    text = "id,text\n1,hello there\n2,¿qué tal?\n"
    data = text.encode(codec) if codec == "utf-16" else b"\xfe\xff" + text.encode(codec)
    records, report = rows_of(data, "wide.csv")
    assert [r.item.text for r in records] == ["hello there", "¿qué tal?"] and report.encodings["wide.csv"] == "utf-16"


def test_an_overlong_line_is_a_named_row_error_not_a_memory_spike():
    records, _ = rows_of(b"id,text\n1," + b"x" * 5_000 + b"\n2,fine\n", line_bytes=1_000)
    assert "longer than 1,000 bytes" in records[0].error and records[1].item.text == "fine"


def test_the_rows_limit_stops_reading_with_its_setting_named():
    data = b"text\n" + b"hello\n" * 50
    with pytest.raises(LimitExceeded, match="TRIAGE_MAX_ROWS"):
        rows_of(data, rows=10)


# --------------------------------------------------------------------------------------
# Zip bombs
# --------------------------------------------------------------------------------------


def bomb(path: Path, megabytes: int) -> Path:
    """A small zip holding one very long conversation (megabytes of text unpacked)."""
    line = '2-AAA=,,Spammer,https://www.linkedin.com/in/spam,Dana,2024-03-01 10:00:00 UTC,,"' + "buy now " * 120 + '",INBOX\n'
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open("Complete_LinkedInDataExport/messages.csv", "w") as fh:
            fh.write(HEADER.encode())
            chunk = line.encode() * 1000
            for _ in range(megabytes * 1024 * 1024 // len(chunk) + 1):
                fh.write(chunk)
    return path


def test_a_zip_bomb_is_refused_fast_and_within_memory(tmp_path):
    archive = bomb(tmp_path / "export.zip", 30)
    assert archive.stat().st_size < 300_000
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(LimitExceeded, match="TRIAGE_MAX_UNPACKED_BYTES"):
        list(read_items(archive, limits=Limits(unpacked_bytes=5 * 1024 * 1024)))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert time.perf_counter() - started < 20 and peak < 64 * 1024 * 1024


def test_one_endless_conversation_is_refused_by_its_own_limit(tmp_path):
    archive = bomb(tmp_path / "export.zip", 3)
    with pytest.raises(LimitExceeded, match="TRIAGE_MAX_CONVERSATION_ROWS"):
        list(read_items(archive, limits=Limits(conversation_rows=500)))


def test_the_cli_names_the_limit_in_one_line(tmp_path, capsys, monkeypatch, tiny_model):
    store = tmp_path / "model"
    save_model(tiny_model, store, tiny_model.manifest)
    monkeypatch.setenv("TRIAGE_MAX_UNPACKED_BYTES", str(2 * 1024 * 1024))
    code = main(["score", str(bomb(tmp_path / "e.zip", 10)), "-o", str(tmp_path / "o.csv"), "--model", str(store), "--jobs", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "TRIAGE_MAX_UNPACKED_BYTES" in err
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize(
    ("payload", "cause"),
    [(b"PK\x03\x04 not really a zip", "zip file"), (b"", "the file is empty")],
)
def test_the_cli_reports_a_corrupt_or_empty_input_without_a_traceback(tmp_path, capsys, tiny_model, payload, cause):
    store = tmp_path / "model"
    save_model(tiny_model, store, tiny_model.manifest)
    path = tmp_path / ("broken.zip" if payload else "empty.csv")
    path.write_bytes(payload)
    assert (
        main(
            [
                "score",
                str(path),
                "-o",
                str(tmp_path / "o.csv"),
                "--model",
                str(store),
                "--format",
                "linkedin" if payload else "csv",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("triage: error:") and "Traceback" not in err and err.count("\n") == 1


def test_the_cli_reports_a_full_disk_in_one_line(tmp_path, capsys, monkeypatch, tiny_model):
    store = tmp_path / "model"
    save_model(tiny_model, store, tiny_model.manifest)
    inbox = tmp_path / "in.csv"
    inbox.write_text("text\nhello\n")

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "o.csv"))

    monkeypatch.setattr("app.output.RowWriter.commit", full)
    assert main(["score", str(inbox), "-o", str(tmp_path / "o.csv"), "--model", str(store), "--jobs", "1"]) == 2
    assert "No space left on device" in capsys.readouterr().err


# --------------------------------------------------------------------------------------
# The service
# --------------------------------------------------------------------------------------


@pytest.fixture()
def store(tiny_model, tmp_path):
    path = tmp_path / "model"
    save_model(tiny_model, path, tiny_model.manifest)
    return path


def settings(store: Path, tmp_path: Path, **kw) -> Settings:
    return Settings(model_dir=store, db_path=tmp_path / "f.db", reload_poll_seconds=0, **kw)


def test_a_zip_bomb_upload_gets_413_naming_the_limit_and_the_server_lives(store, tmp_path):
    archive = bomb(tmp_path / "e.zip", 12).read_bytes()
    with TestClient(create_app(settings(store, tmp_path, max_unpacked_bytes=2 * 1024 * 1024))) as c:
        started = time.perf_counter()
        r = c.post("/v1/score/csv", files={"file": ("e.zip", archive, "application/zip")})
        assert (
            r.status_code == 413 and r.json()["error"] == "limit_exceeded" and "TRIAGE_MAX_UNPACKED_BYTES" in r.json()["message"]
        )
        assert time.perf_counter() - started < 30
        assert c.get("/healthz").json() == {"status": "ok"}


def test_scoring_runs_off_the_event_loop_and_has_a_deadline(store, tmp_path, monkeypatch):
    with TestClient(create_app(settings(store, tmp_path, score_timeout_seconds=2.0))) as c:
        service = c.app.state.service
        real = service.score

        def slow(items, n_reasons=3):
            time.sleep(3.0)
            return real(items, n_reasons)

        monkeypatch.setattr(service, "score", slow)
        answers: dict[str, int] = {}
        worker = threading.Thread(target=lambda: answers.update(slow=c.post("/v1/score", json={"text": "hi"}).status_code))
        worker.start()
        time.sleep(0.3)
        started = time.perf_counter()
        assert c.get("/healthz").status_code == 200
        assert time.perf_counter() - started < 1.0  # /healthz is not stuck behind the slow request
        worker.join()
        assert answers["slow"] == 503


def test_a_full_disk_under_the_feedback_store_is_507_json(store, tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    with TestClient(create_app(settings(store, tmp_path))) as c:
        monkeypatch.setattr("app.feedback.connect", full)
        r = c.post("/v1/feedback", json={"item": {"text": "hi"}, "label": "genuine"})
        assert r.status_code == 507 and r.json()["error"] == "insufficient_storage"
        assert c.get("/healthz").status_code == 200


def test_small_protocol_edges_answer_json(store, tmp_path):
    with TestClient(create_app(settings(store, tmp_path))) as c:
        r = c.post("/v1/score", content=b'{"text":"hi"}', headers={"content-type": "application/json", "content-length": "abc"})
        assert r.status_code == 400 and r.json()["error"] == "bad_request"
        r = c.post("/v1/score/", json={"text": "hi"}, headers={"host": "evil.example"})
        assert r.status_code == 404 and "location" not in r.headers  # no redirect echoing the Host header
        r = c.post("/v1/score", json={"text": "hi", "sender": {"connections": True}})
        assert r.status_code == 422


# --------------------------------------------------------------------------------------
# The model store
# --------------------------------------------------------------------------------------


def test_a_manifest_with_bad_thresholds_is_refused_and_the_old_model_keeps_serving(store, tmp_path, tiny_model):
    with TestClient(create_app(settings(store, tmp_path))) as c:
        folder = save_model(tiny_model, store, {**tiny_model.manifest, "version": "bad"}, make_current=True)
        manifest = json.loads((folder / MANIFEST_FILE).read_text())
        manifest["thresholds"] = {"review": "x", "spam": None}
        (folder / MANIFEST_FILE).write_text(json.dumps(manifest))
        (store / POINTER_FILE).write_text("bad\n")  # a pointer without the manifest's hash, as a careless edit leaves it
        r = c.post("/v1/model/reload")
        assert r.status_code == 409 and "thresholds" in r.json()["message"]
        assert c.post("/v1/score", json={"text": "hi"}).status_code == 200


def test_a_binary_current_means_not_ready_and_a_clear_cli_error(store, tmp_path, capsys):
    (store / POINTER_FILE).write_bytes(b"\xff\xfe\x00garbage\x00")
    with TestClient(create_app(settings(store, tmp_path))) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and "not a readable pointer" in r.json()["reason"]
        assert str(tmp_path) not in r.text  # no absolute paths
    assert main(["predict", "hi", "--model", str(store)]) == 2
    assert "not a readable pointer" in capsys.readouterr().err


def test_rollback_outside_the_store_is_refused(store, capsys):
    assert main(["model", "rollback", "../../elsewhere/versions/x", "--model", str(store)]) == 2
    assert "is not a version name" in capsys.readouterr().err


def test_a_version_folder_linked_out_of_the_store_is_refused(store, tmp_path, tiny_model):
    outside = save_model(tiny_model, tmp_path / "elsewhere", {**tiny_model.manifest, "version": "evil"}, make_current=False)
    os.symlink(outside, store / VERSIONS_DIR / "evil")
    (store / POINTER_FILE).write_text("evil\n")
    with pytest.raises(ModelError, match="link out of the model store"):
        load_model(store)


def test_new_versions_are_readable_by_other_users(store):
    folder = next((store / VERSIONS_DIR).iterdir())
    assert folder.stat().st_mode & 0o777 == 0o755
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in folder.iterdir())
