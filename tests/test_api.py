"""The HTTP API over the tiny model: every endpoint, auth, limits, reload, lists, feedback, fuzzing."""

from __future__ import annotations

import csv
import io
import json
import math
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance

from app.api import create_app
from app.artifact import POINTER_FILE, VERSIONS_DIR, save_model, write_atomic
from app.feedback import add_feedback, connect, list_feedback
from app.items import Item, ThreadMessage, build_item
from app.lists import ListsError, normalise_profile_url
from app.model import LABELS, softmax
from app.schemas import EXAMPLE_ITEM
from app.scoring import Scorer
from app.settings import PROJECT_ROOT, Settings
from app.signals import registry

SPAMMY = "Guaranteed crypto profits! Pay the small fee and message me on WhatsApp +1 555 123 4567 today."
TOKEN = "s3cret-token"


@pytest.fixture(scope="session")
def base_store(tiny_model, tmp_path_factory):
    """A model store holding the tiny model as its current version."""
    store = tmp_path_factory.mktemp("store") / "model"
    save_model(tiny_model, store, tiny_model.manifest)
    return store


@pytest.fixture()
def store(base_store, tmp_path):
    """A private copy of the store, for tests that add versions to it."""
    copy = tmp_path / "model"
    shutil.copytree(base_store, copy)
    return copy


def make_settings(store: Path, tmp_path: Path, **overrides) -> Settings:
    values = {"model_dir": store, "db_path": tmp_path / "feedback.db", "reload_poll_seconds": 0}
    return Settings(**{**values, **overrides})


@pytest.fixture()
def client(base_store, tmp_path):
    with TestClient(create_app(make_settings(base_store, tmp_path))) as c:
        yield c


def add_version(store: Path, model, version: str, make_current: bool = True) -> Path:
    return save_model(model, store, {**model.manifest, "version": version}, make_current=make_current)


def one(model, item: Item):
    return Scorer(model).score([item])[0]


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


# --------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------


def test_score_gives_a_verdict_scores_reasons_and_summary(client, tiny_model):
    r = client.post("/v1/score", json=EXAMPLE_ITEM)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == EXAMPLE_ITEM["id"]
    assert body["verdict"] in LABELS and body["source"] == "model"
    assert set(body["scores"]) == set(LABELS) and abs(sum(body["scores"].values()) - 1) < 1e-9
    assert body["confidence"] == pytest.approx(body["scores"][body["verdict"]])
    assert body["model_version"] == tiny_model.version and body["summary"].startswith("Looks like")
    for reason in body["reasons"]:
        assert {"feature", "description", "contribution", "spans"} == set(reason) and reason["contribution"] > 0
        for span in reason["spans"]:
            assert EXAMPLE_ITEM["text"][span["start"] : span["end"]] == span["text"]


def test_the_request_becomes_the_same_item_as_build_item_makes(client, tiny_model):
    thread = [
        {"direction": "outbound", "text": "Thanks!", "sent_at": "2025-01-01T10:00:00Z"},
        {"direction": "inbound", "text": "Any thoughts?", "sent_at": "2025-01-02T10:00:00Z"},
        {"direction": "inbound", "text": "Bumping this", "sent_at": "2025-01-03T10:00:00"},
    ]
    request = {"text": "Just following up on my offer, 15 minutes this week?", "thread": thread, "kind": "Message"}
    request |= {"sent_at": "2025-01-04T10:00:00Z", "connected_at": "2025-01-04T09:00:00+00:00"}
    body = client.post("/v1/score", json=request).json()
    expected_item = build_item(
        request["text"],
        thread=[ThreadMessage(m["direction"], m["text"]) for m in thread],
        minutes_since_connected=60,
        is_connection=True,
    )
    assert expected_item.prior_unanswered == 2 and expected_item.earlier_text == "Any thoughts?\nBumping this"
    expected = one(tiny_model, expected_item)
    assert body["scores"] == pytest.approx(expected.scores, abs=1e-12)


def test_batch_answers_in_order(client, tiny_model):
    texts = ["Great meeting you at the conference!", SPAMMY, "We help SaaS teams book more demos", "ok"]
    items = [{"id": str(i), "text": t} for i, t in enumerate(texts)]
    r = client.post("/v1/score/batch", json={"items": items})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == 4 and [v["id"] for v in body["items"]] == ["0", "1", "2", "3"]
    for text, verdict in zip(texts, body["items"], strict=True):
        assert verdict["scores"] == pytest.approx(one(tiny_model, Item(text=text)).scores, abs=1e-12)


def test_an_empty_text_is_a_named_error_not_a_verdict(client):
    r = client.post("/v1/score", json={"kind": "invite", "text": "  "})
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "body" and "text: empty" in r.json()["message"]
    r = client.post("/v1/score/batch", json={"items": [{"text": "hi"}, {"text": ""}]})
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "body.items.1"


@pytest.mark.parametrize("field", ["connections", "mutual_connections", "account_age_days"])
def test_a_boolean_is_not_a_count(client, field):
    r = client.post("/v1/score", json={"text": "hi", "sender": {field: True}})
    assert r.status_code == 422 and r.json()["details"][0]["field"] == f"body.sender.{field}"


def test_batch_limits_and_a_bad_item_named_by_its_index(client):
    r = client.post("/v1/score/batch", json={"items": [{"text": "hi"}] * 1001})
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "body.items"
    r = client.post("/v1/score/batch", json={"items": [{"text": "ok"}, {"text": "ok"}, {"text": "x", "kind": "email"}]})
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "body.items.2.kind"


def test_text_limit_is_20000_characters(client):
    assert client.post("/v1/score", json={"text": "a " * 10_000}).status_code == 200
    r = client.post("/v1/score", json={"text": "a" * 20_001})
    assert r.status_code == 422
    assert r.json()["details"][0] == {
        "field": "body.text",
        "message": "String should have at most 20000 characters",
        "type": "string_too_long",
    }


def test_a_smaller_text_limit_from_settings_names_the_field(base_store, tmp_path):
    settings = make_settings(base_store, tmp_path, max_text_chars=50, max_batch_items=2)
    with TestClient(create_app(settings)) as c:
        r = c.post("/v1/score", json={"text": "x" * 51})
        assert r.status_code == 422 and r.json()["details"][0]["field"] == "body.text"
        r = c.post(
            "/v1/score/batch",
            json={"items": [{"text": "ok"}, {"text": "ok", "thread": [{"direction": "inbound", "text": "y" * 60}]}]},
        )
        assert r.status_code == 422 and r.json()["details"][0]["field"] == "body.items.1.thread.0.text"
        r = c.post("/v1/score/batch", json={"items": [{"text": "ok"}] * 3})
        assert r.status_code == 422 and "limit is 2" in r.json()["message"]


def test_validation_errors_name_the_field_path(client):
    cases = [
        ({"text": "x", "sender": {"connections": -3}}, "body.sender.connections"),
        ({"text": "x", "sender": {"connections": "12"}}, "body.sender.connections"),
        ({"text": "x", "sent_at": "next tuesday"}, "body.sent_at"),
        ({"text": "x", "thread": [{"direction": "sideways"}]}, "body.thread.0.direction"),
        ({"text": "x", "sendr": {}}, "body.sendr"),
        ({"kind": "invite"}, "body.text"),
        ([1, 2], "body"),
    ]
    for payload, field in cases:
        r = client.post("/v1/score", json=payload)
        assert r.status_code == 422, payload
        body = r.json()
        assert body["error"] == "validation_error" and body["details"][0]["field"] == field, body
        assert body["message"].startswith(field)
    r = client.post("/v1/score", content=b'{"text": "unterminated', headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["details"][0]["type"] == "json_invalid"


def test_unknown_routes_and_methods_are_json(client):
    r = client.get("/v2/nothing")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = client.get("/v1/score")
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"


def test_explain_decomposes_every_class_exactly(client):
    r = client.post("/v1/explain", json={"text": SPAMMY, "sender": {"connections": 3, "has_photo": False}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [c["label"] for c in body["classes"]] == list(LABELS)
    decisions = []
    for c in body["classes"]:
        total = c["intercept"] + math.fsum(x["contribution"] for x in c["contributions"])
        assert total == pytest.approx(c["decision_value"], abs=1e-9)
        assert all(x["contribution"] != 0 for x in c["contributions"])
        decisions.append(c["decision_value"])
    proba = softmax(__import__("numpy").array(decisions))
    assert dict(zip(LABELS, proba, strict=True)) == pytest.approx(body["verdict"]["scores"], abs=1e-9)


# --------------------------------------------------------------------------------------
# CSV upload
# --------------------------------------------------------------------------------------


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_upload_streams_scores_and_error_rows_naming_the_line(client):
    upload = (
        "id,text,sender_connections,note,verdict\n"
        "a1,Great meeting you at PyCon!,120,keep,mine\n"
        "\n"
        'a2,"Buy crypto\nnow",many,x,\n'
        f"a3,{'y' * 20_001},,,\n"
        "a4,,,too,many,fields\n"
        "a5,Hi there,,,\n"
    )
    r = client.post("/v1/score/csv", files={"file": ("inbox.csv", upload.encode(), "text/csv")})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    rows = read_csv(r.text)
    assert list(rows[0])[:3] == ["file", "line", "id"]
    assert {"note", "input_verdict", "verdict", "p_genuine", "reason_1", "source", "summary", "status", "error"} <= set(rows[0])
    by_id = {row["id"]: row for row in rows}
    assert len(rows) == 5 and by_id["a1"]["file"] == "inbox.csv" and by_id["a1"]["line"] == "2"
    a1 = by_id["a1"]
    assert (a1["verdict"] in LABELS, a1["status"], a1["error"], a1["note"], a1["input_verdict"]) == (
        True,
        "scored",
        "",
        "keep",
        "mine",
    )
    assert by_id["a2"]["verdict"] == "" and by_id["a2"]["status"] == "error"
    assert by_id["a2"]["error"].startswith("line 4: sender_connections")
    assert by_id["a3"]["error"] == "line 6: text: 20,001 characters, the limit is 20,000"
    assert by_id["a4"]["error"] == "line 7: the row has 6 fields, the header has 5"
    assert by_id["a5"]["verdict"] in LABELS and by_id["a5"]["line"] == "8"
    assert abs(sum(float(by_id["a5"][f"p_{lab}"]) for lab in LABELS) - 1) < 1e-3


def test_upload_takes_the_batch_readers_formats(client):
    jsonl = b'{"id": "j1", "text": "hi", "sender": {"connections": 4}}\n{"text": 5}\nnot json\n'
    rows = read_csv(client.post("/v1/score/csv", files={"file": ("inbox.jsonl", jsonl)}).text)
    assert [r["status"] for r in rows] == ["scored", "error", "error"]
    assert rows[1]["error"].startswith("line 2: text") and rows[2]["error"].startswith("line 3: not valid JSON")
    cp1252 = client.post("/v1/score/csv", files={"file": ("old.csv", b"text\nfine\ncaf\xe9 cr\xe8me\n")})
    assert [r["status"] for r in read_csv(cp1252.text)] == ["scored", "scored"]


def test_upload_errors_for_the_whole_file_name_the_field(client):
    def post(data: bytes, **form):
        return client.post("/v1/score/csv", files={"file": ("x.csv", data, "text/csv")}, data=form)

    r = post(b"id,message\n1,hello\n")
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "file" and "cannot tell the format" in r.json()["message"]
    r = post(b"id,message\n1,hello\n", format="csv")
    assert r.status_code == 422 and "no 'text' column" in r.json()["message"]
    assert post(b"").status_code == 422
    r = post(b"PK\x03\x04 not really a zip")
    assert r.status_code == 422 and r.json()["error"] == "upload_error"
    r = post(b"text\nhi\n", format="xml")
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "body.format"
    r = client.post("/v1/score/csv", data={"file": "not a file"})
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "body.file"


def test_csv_upload_size_limit(base_store, tmp_path):
    with TestClient(create_app(make_settings(base_store, tmp_path, max_upload_bytes=1_000))) as c:
        ok = c.post("/v1/score/csv", files={"file": ("x.csv", b"text\n" + b"hello\n" * 100)})
        assert ok.status_code == 200
        r = c.post("/v1/score/csv", files={"file": ("x.csv", b"text\n" + b"hello\n" * 200)})
        assert r.status_code == 413 and "1,000 bytes" in r.json()["message"] and "TRIAGE_MAX_UPLOAD_BYTES" in r.json()["message"]


@hsettings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(
    rows=st.lists(
        st.fixed_dictionaries(
            {"text": st.text(max_size=60)},
            optional={
                "kind": st.sampled_from(["invite", "message", "Invite", "letter", ""]),
                "sender_connections": st.one_of(st.integers(-5, 10**12).map(str), st.text(max_size=5)),
                "sender_has_photo": st.sampled_from(["true", "no", "1", "maybe", ""]),
                "sent_at": st.one_of(st.datetimes().map(lambda d: d.isoformat()), st.text(max_size=8)),
                "connected_at": st.datetimes().map(lambda d: d.isoformat() + "+14:00"),
            },
        ),
        max_size=6,
    )
)
def test_fuzzed_csv_rows_are_scored_or_named_never_a_server_error(csv_client, rows):
    columns = ["text", "kind", "sender_connections", "sender_has_photo", "sent_at", "connected_at"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns)
    writer.writeheader()
    writer.writerows(rows)
    r = csv_client.post("/v1/score/csv", files={"file": ("f.csv", buf.getvalue().encode("utf-8", "surrogatepass"))})
    assert r.status_code in (200, 422), r.text
    if r.status_code == 200:
        for row in read_csv(r.text):
            assert (row["verdict"] in LABELS) == (row["status"] == "scored") != bool(row["error"]), row
            if row["error"]:
                assert row["error"].startswith(f"line {row['line']}:")


@pytest.fixture(scope="module")
def csv_client(base_store, tmp_path_factory):
    with TestClient(create_app(make_settings(base_store, tmp_path_factory.mktemp("csv")))) as c:
        yield c


# --------------------------------------------------------------------------------------
# Limits and auth
# --------------------------------------------------------------------------------------


def test_body_size_limit_from_content_length_and_while_streaming(base_store, tmp_path):
    with TestClient(create_app(make_settings(base_store, tmp_path, max_body_bytes=2_000))) as c:
        assert c.post("/v1/score", json={"text": "a" * 1_500}).status_code == 200
        r = c.post("/v1/score", json={"text": "a" * 2_500})
        assert r.status_code == 413
        body = r.json()
        assert body["error"] == "payload_too_large" and "2,000 bytes" in body["message"] and body["details"][0]["field"] == "body"

        def chunks():  # no Content-Length: the limit applies while the body streams in
            yield b'{"text": "'
            for _ in range(30):
                yield b"a" * 100
            yield b'"}'

        r = c.post("/v1/score", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["error"] == "payload_too_large"


def test_bearer_token_guards_everything_but_health_checks(base_store, tmp_path):
    with TestClient(create_app(make_settings(base_store, tmp_path, api_token=TOKEN))) as c:
        assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200
        for method, path, kw in [
            ("post", "/v1/score", {"json": {"text": "hi"}}),
            ("post", "/v1/score/batch", {"json": {"items": []}}),
            ("post", "/v1/explain", {"json": {"text": "hi"}}),
            ("get", "/v1/feedback", {}),
            ("post", "/v1/feedback", {"json": {"item": {"text": "hi"}, "label": "genuine"}}),
            ("get", "/v1/model", {}),
            ("post", "/v1/model/reload", {}),
            ("get", "/metrics", {}),
            ("get", "/openapi.json", {}),
            ("get", "/docs", {}),
        ]:
            r = getattr(c, method)(path, **kw)
            assert r.status_code == 401 and r.json()["error"] == "unauthorized", path
            assert r.headers["www-authenticate"] == "Bearer"
            wrong = getattr(c, method)(path, headers={"Authorization": "Bearer nope"}, **kw)
            assert wrong.status_code == 401, path
            right = getattr(c, method)(path, headers={"Authorization": f"Bearer {TOKEN}"}, **kw)
            assert right.status_code in (200, 201), (path, right.text)
        assert c.post("/v1/score", json={"text": "hi"}, headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
        assert c.post("/v1/score", json={"text": "hi"}, headers={"Authorization": "Bearer ünïcode".encode()}).status_code == 401


def test_without_a_token_nothing_needs_one(client):
    assert client.post("/v1/score", json={"text": "hi"}).status_code == 200
    assert client.get("/metrics").status_code == 200


# --------------------------------------------------------------------------------------
# Feedback
# --------------------------------------------------------------------------------------


def test_feedback_is_stored_and_listed(client, tiny_model):
    r = client.post("/v1/feedback", json={"item": EXAMPLE_ITEM, "label": "genuine", "corrects": "sales_pitch"})
    assert r.status_code == 201, r.text
    stored = r.json()
    assert stored["label"] == "genuine" and stored["corrects"] == "sales_pitch" and stored["model_version"] == tiny_model.version
    assert stored["item"]["text"] == EXAMPLE_ITEM["text"] and stored["item"]["minutes_since_connected"] == 25
    assert stored["request"]["sender"]["profile_url"] == EXAMPLE_ITEM["sender"]["profile_url"]
    assert Item.from_mapping(stored["item"]).sender_name == "Alex Morgan"
    for i in range(4):
        client.post("/v1/feedback", json={"item": {"text": f"n{i}"}, "label": "spam", "model_version": "old-1"})
    listed = client.get("/v1/feedback").json()
    assert listed["count"] == 5 and [x["id"] for x in listed["items"]] == sorted(x["id"] for x in listed["items"])
    page = client.get("/v1/feedback", params={"limit": 2}).json()
    assert page["count"] == 2 and page["next_after_id"] == page["items"][-1]["id"]
    rest = client.get("/v1/feedback", params={"after_id": page["next_after_id"], "limit": 10}).json()
    assert rest["count"] == 3 and rest["next_after_id"] is None and rest["items"][0]["model_version"] == "old-1"
    later = client.get("/v1/feedback", params={"since": "2999-01-01T00:00:00Z"}).json()
    assert later["count"] == 0
    assert client.get("/v1/feedback", params={"since": "2000-01-01T00:00:00"}).json()["count"] == 5
    assert (
        client.post("/v1/feedback", json={"item": {"text": "x"}, "label": "friendly"}).json()["details"][0]["field"]
        == "body.label"
    )


def test_concurrent_feedback_over_http_loses_nothing(client):
    errors: list[str] = []

    def writer(n: int) -> None:
        for i in range(15):
            r = client.post("/v1/feedback", json={"item": {"id": f"{n}-{i}", "text": f"thread {n} item {i}"}, "label": "spam"})
            if r.status_code != 201:
                errors.append(r.text)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    listed = client.get("/v1/feedback", params={"limit": 1000}).json()
    assert listed["count"] == 120 and len({x["item_id"] for x in listed["items"]}) == 120


def _write_feedback(db: str, n: int) -> None:
    for i in range(25):
        add_feedback(Path(db), Item(text=f"process {n} item {i}"), "genuine", item_id=f"p{n}-{i}")


def test_concurrent_feedback_from_processes_loses_nothing(tmp_path):
    db = tmp_path / "fb.db"
    connect(db).close()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_write_feedback, args=(str(db), n)) for n in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    records = list_feedback(db)
    assert len(records) == 100 and len({r.item_id for r in records}) == 100
    conn = connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


# --------------------------------------------------------------------------------------
# The model: card, thresholds, reload, watcher
# --------------------------------------------------------------------------------------


def test_model_card_lists_version_metrics_thresholds_and_every_signal(client, tiny_model):
    r = client.get("/v1/model")
    assert r.status_code == 200, r.text
    card = r.json()
    assert card["version"] == tiny_model.version and card["labels"] == list(LABELS)
    assert card["thresholds"] == {"review": tiny_model.thresholds.review, "spam": tiny_model.thresholds.spam}
    assert "grouped_cv_export" in card["metrics"] and "grouped_cv_text" in card["metrics"]
    assert {s["name"]: s["description"] for s in card["signals"]} == {
        s.name: s.description for s in registry().signals.values() if s.emit
    }


def test_thresholds_from_settings_override_the_manifest(base_store, tmp_path, tiny_model):
    settings = make_settings(base_store, tmp_path, review_threshold=1.0, spam_threshold=0.0)
    with TestClient(create_app(settings)) as c:
        card = c.get("/v1/model").json()
        assert card["thresholds"] == {"review": 1.0, "spam": 0.0}
        assert card["manifest_thresholds"] == tiny_model.manifest["thresholds"]
        verdict = c.post("/v1/score", json={"text": "Great to meet you"}).json()
        assert verdict["needs_review"] is (verdict["confidence"] < 1.0)


def test_thresholds_out_of_range_are_refused_by_the_settings(base_store, tmp_path):
    with pytest.raises(ValueError, match="review_threshold"):
        make_settings(base_store, tmp_path, review_threshold=1.5)


def test_service_settings_come_from_the_environment(monkeypatch):
    env = {"TRIAGE_RELOAD_POLL_SECONDS": "0.5", "TRIAGE_BENCH": "1", "TRIAGE_PORT": "9001", "TRIAGE_SPAM_THRESHOLD": "0.9"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    s = Settings.from_env()
    assert (s.reload_poll_seconds, s.bench, s.port, s.spam_threshold, s.review_threshold) == (0.5, True, 9001, 0.9, None)
    monkeypatch.setenv("TRIAGE_REVIEW_THRESHOLD", "high")
    with pytest.raises(ValueError, match="review_threshold"):
        Settings.from_env()


def test_reload_swaps_in_a_good_model(store, tmp_path, tiny_model):
    with TestClient(create_app(make_settings(store, tmp_path))) as c:
        assert c.get("/v1/model").json()["version"] == tiny_model.version
        add_version(store, tiny_model, "tiny-v2")
        r = c.post("/v1/model/reload")
        assert r.status_code == 200, r.text
        assert r.json() | {"message": ""} == {
            "ok": True,
            "changed": True,
            "version": "tiny-v2",
            "previous_version": tiny_model.version,
            "message": "",
        }
        assert c.post("/v1/score", json={"text": "hi"}).json()["model_version"] == "tiny-v2"
        assert c.get("/readyz").json() == {"status": "ready", "model_version": "tiny-v2", "reason": None}


def tamper(store: Path, tiny_model, version: str) -> None:
    """A new version whose artifact no longer matches its manifest, made current behind the store's back."""
    folder = add_version(store, tiny_model, version, make_current=False)
    with open(folder / "model.skops", "ab") as fh:
        fh.write(b"tampered")
    # swapped in whole, as the store writes it: a watcher polling mid-write would see an empty pointer
    write_atomic(store / POINTER_FILE, version + "\n")


def test_reload_refuses_a_tampered_model_and_keeps_serving(store, tmp_path, tiny_model):
    with TestClient(create_app(make_settings(store, tmp_path))) as c:
        tamper(store, tiny_model, "tiny-evil")
        r = c.post("/v1/model/reload")
        assert r.status_code == 409
        body = r.json()
        assert body["error"] == "model_refused" and "does not match its manifest" in body["message"]
        assert f"still serving {tiny_model.version}" in body["message"]
        assert c.get("/readyz").json()["model_version"] == tiny_model.version
        assert c.post("/v1/score", json={"text": "hi"}).json()["model_version"] == tiny_model.version
        assert 'triage_model_reloads{outcome="refused"} 1.0' in c.get("/metrics").text


def test_the_watcher_swaps_in_new_models_and_refuses_bad_ones(store, tmp_path, tiny_model):
    with TestClient(create_app(make_settings(store, tmp_path, reload_poll_seconds=0.05))) as c:
        add_version(store, tiny_model, "tiny-w2")
        assert wait_for(lambda: c.get("/v1/model").json()["version"] == "tiny-w2")
        tamper(store, tiny_model, "tiny-w3-evil")
        service = c.app.state.service
        assert wait_for(lambda: service.models.reloads["refused"] >= 1)
        time.sleep(0.3)  # a refused model is not retried on every poll
        assert service.models.reloads["refused"] == 1
        assert c.get("/v1/model").json()["version"] == "tiny-w2"
        add_version(store, tiny_model, "tiny-w4")
        assert wait_for(lambda: c.get("/v1/model").json()["version"] == "tiny-w4")


def test_starts_without_a_model_and_becomes_ready_when_one_appears(tmp_path, tiny_model):
    empty = tmp_path / "empty-store"
    with TestClient(create_app(make_settings(empty, tmp_path))) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["status"] == "not_ready" and "no model in" in r.json()["reason"]
        r = c.post("/v1/score", json={"text": "hi"})
        assert r.status_code == 503 and r.json()["error"] == "model_unavailable"
        assert c.get("/v1/model").status_code == 503
        assert c.post("/v1/model/reload").status_code == 409
        add_version(empty, tiny_model, "tiny-late")
        assert c.post("/v1/model/reload").json()["version"] == "tiny-late"
        assert c.get("/readyz").status_code == 200


# --------------------------------------------------------------------------------------
# Allow and deny lists
# --------------------------------------------------------------------------------------

LISTS = {
    "allow": {"names": ["Ana Silva"], "profile_urls": ["linkedin.com/in/trusted-friend"]},
    "deny": {"keywords": ["guaranteed returns"], "domains": ["scam.example"], "companies": ["LeadRocket"]},
}


@pytest.fixture()
def lists_client(base_store, tmp_path):
    path = tmp_path / "lists.json"
    path.write_text(json.dumps(LISTS))
    with TestClient(create_app(make_settings(base_store, tmp_path, lists_file=path))) as c:
        yield c


def test_lists_decide_before_the_model_and_say_why(lists_client):
    def score(item):
        r = lists_client.post("/v1/score", json=item)
        assert r.status_code == 200, r.text
        return r.json()

    allowed = score({"text": SPAMMY, "sender": {"name": "ana  SILVA"}})
    assert (allowed["verdict"], allowed["source"], allowed["confidence"]) == ("genuine", "allow_list", 1.0)
    assert allowed["reasons"][0]["description"] == "sender is on your allow list (name 'ana  SILVA')"
    assert allowed["reasons"][0]["feature"] == "list:allow:names"
    assert "allow list" in allowed["summary"]

    by_url = score({"text": "hi", "sender": {"profile_url": "https://uk.linkedin.com/in/Trusted-Friend/?trk=abc"}})
    assert by_url["source"] == "allow_list"

    kw = score({"text": "Get GUARANTEED   returns today"})
    assert (kw["verdict"], kw["source"]) == ("spam", "deny_list")
    assert kw["reasons"][0]["spans"] == [{"start": 4, "end": 24, "text": "GUARANTEED   returns"}]

    for text in ("see https://www.scam.example/offer", "write to bob@mx.scam.example"):
        assert score({"text": text})["reasons"][0]["feature"] == "list:deny:domains"
    assert score({"text": "see notscam.example.org"})["source"] == "model"

    company = score({"text": "hello", "sender": {"headline": "Growth Partner at LeadRocket"}})
    assert company["reasons"][0]["description"] == "sender is on your deny list (company 'LeadRocket')"
    assert score({"text": "hello", "sender": {"company": "leadrocket"}})["source"] == "deny_list"

    both = score({"text": "guaranteed returns", "sender": {"name": "Ana Silva"}})
    assert both["source"] == "allow_list" and [r["feature"] for r in both["reasons"]] == [
        "list:allow:names",
        "list:deny:keywords",
    ]

    assert score({"text": "Great meeting you at the meetup"})["source"] == "model"

    explained = lists_client.post("/v1/explain", json={"text": "guaranteed returns"}).json()
    assert explained["verdict"]["source"] == "deny_list" and len(explained["classes"]) == 3

    batch = lists_client.post("/v1/score/batch", json={"items": [{"text": "guaranteed returns"}, {"text": "hi"}]}).json()
    assert [v["source"] for v in batch["items"]] == ["deny_list", "model"]
    csv_out = lists_client.post("/v1/score/csv", files={"file": ("f.csv", b"text,sender_name\nhi,Ana Silva\n")}).text
    assert read_csv(csv_out)[0]["source"] == "allow_list"
    assert lists_client.get("/v1/model").json()["lists"]["deny"]["keywords"] == 1


def test_lists_file_changes_are_picked_up_and_bad_ones_refused(lists_client, tmp_path):
    service = lists_client.app.state.service
    path = service.settings.lists_file
    path.write_text(json.dumps({"deny": {"names": ["Mallory Example"]}}))
    service.poll()
    r = lists_client.post("/v1/score", json={"text": "hi", "sender": {"name": "Mallory Example"}}).json()
    assert r["source"] == "deny_list"
    out = lists_client.post("/v1/score/csv", files={"file": ("f.csv", b"text,sender_name\nhi,Mallory Example\n")}).text
    assert read_csv(out)[0]["source"] == "deny_list"  # an upload uses the lists the service holds now
    path.write_text('{"deny": {"names": "not a list"}}  ')
    service.poll()
    assert "deny.names: expected a list of strings" in service.lists_error
    assert (
        lists_client.post("/v1/score", json={"text": "hi", "sender": {"name": "Mallory Example"}}).json()["source"] == "deny_list"
    )


def test_a_bad_lists_file_stops_start_up_with_the_reason(base_store, tmp_path):
    path = tmp_path / "lists.json"
    path.write_text(json.dumps({"allow": {"emails": ["a@b.c"]}}))
    with pytest.raises(ListsError, match=r"allow\.emails: unknown key"):
        with TestClient(create_app(make_settings(base_store, tmp_path, lists_file=path))):
            pass


def test_profile_urls_are_normalised():
    assert normalise_profile_url("https://www.linkedin.com/in/Jane-Doe/?trk=x#top") == "linkedin.com/in/jane-doe"
    assert normalise_profile_url("de.linkedin.com/in/jane-doe") == "linkedin.com/in/jane-doe"
    assert normalise_profile_url("http://[::1") == "http://[::1"


# --------------------------------------------------------------------------------------
# Operations: health, metrics, docs
# --------------------------------------------------------------------------------------


def test_metrics_count_requests_latency_and_verdicts(client):
    client.post("/v1/score", json={"text": "hi"})
    client.post("/v1/score", json={"text": "x" * 20_001})
    client.get("/no/such/path")
    text = client.get("/metrics").text
    assert 'triage_http_requests_total{method="POST",route="/v1/score",status="200"} 1.0' in text
    assert 'triage_http_requests_total{method="POST",route="/v1/score",status="422"} 1.0' in text
    assert 'triage_http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in text
    assert 'triage_http_request_duration_seconds_bucket{le="0.001",route="/v1/score"}' in text
    assert "triage_verdicts_total{" in text and 'source="model"' in text
    assert "triage_model_loaded 1.0" in text


def test_openapi_documents_every_endpoint_with_examples(client):
    spec = client.get("/openapi.json").json()
    expected = {
        ("post", "/v1/score"),
        ("post", "/v1/score/batch"),
        ("post", "/v1/score/csv"),
        ("post", "/v1/explain"),
        ("post", "/v1/feedback"),
        ("get", "/v1/feedback"),
        ("get", "/v1/model"),
        ("post", "/v1/model/reload"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
    }
    assert {(m, p) for p, ops in spec["paths"].items() for m in ops} == expected
    schemas = spec["components"]["schemas"]

    def resolve(node):
        return schemas[node["$ref"].rsplit("/", 1)[1]] if "$ref" in node else node

    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                assert resolve(body["schema"]).get("examples"), (method, path)
            ok = op["responses"].get("200") or op["responses"].get("201")
            content = ok.get("content", {})
            if "application/json" in content and content["application/json"]["schema"]:
                assert resolve(content["application/json"]["schema"]).get("examples"), (method, path)
            else:
                assert any("example" in c for c in content.values()), (method, path)
            if method == "post":
                assert resolve(op["responses"]["422"]["content"]["application/json"]["schema"]).get("examples")
    assert client.get("/docs").status_code == 200
    assert "/v1/_bench/constant" not in spec["paths"]


def test_the_bench_route_exists_only_when_asked_for(base_store, tmp_path):
    with TestClient(create_app(make_settings(base_store, tmp_path, bench=True))) as c:
        assert c.post("/v1/_bench/constant", json={"text": "hi"}).json() == {"ok": True}


# --------------------------------------------------------------------------------------
# Fuzzing the OpenAPI schema
# --------------------------------------------------------------------------------------


def test_fuzzing_the_openapi_schema_never_gives_a_server_error(base_store, tmp_path):
    app = create_app(make_settings(base_store, tmp_path))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    seen: dict[str, set[int]] = {}

    def check(case):
        r = case.call()
        seen.setdefault(f"{case.method} {case.path}", set()).add(r.status_code)
        assert r.status_code < 500, f"{case.method} {case.path} -> {r.status_code}: {r.text[:300]}"
        content_type = {k.lower(): v for k, v in r.headers.items()}["content-type"][0].split(";")[0]
        assert content_type in ("application/json", "text/csv", "text/plain"), r.headers
        if r.status_code >= 400:
            assert {"error", "message", "details"} <= set(r.json())
        if r.status_code < 300 or r.status_code == 422:
            case.validate_response(r, checks=[response_schema_conformance])  # the answer matches the documented schema

    # Every operation gets its own examples, valid and invalid (a shared draw could miss one);
    # derandomised, so a run is repeatable.
    for op in operations:
        cases = st.one_of(*[op.as_strategy(generation_mode=mode) for mode in GenerationMode])
        hsettings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True)(
            given(case=cases)(check)
        )()
    assert len(seen) == 11, seen
    assert any(200 <= s < 300 for s in seen["POST /v1/score"])


# --------------------------------------------------------------------------------------
# A real server
# --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_triage_serve_scores_over_real_http(base_store, tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
    env |= {"TRIAGE_MODEL_DIR": str(base_store), "TRIAGE_DB": str(tmp_path / "real.db"), "TRIAGE_API_TOKEN": TOKEN}
    cmd = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                return httpx.get(f"{base}/readyz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        assert wait_for(ready, timeout=120)  # a bound on waiting (a loaded host is slow), not a timing check
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=base, headers=headers, timeout=10) as http:
            r = http.post("/v1/score", json=EXAMPLE_ITEM)
            assert r.status_code == 200 and r.json()["id"] == EXAMPLE_ITEM["id"] and r.json()["verdict"] in LABELS
            assert http.post("/v1/score", json={"text": "x" * 20_001}).status_code == 422
            big = http.post("/v1/score", content=b"x" * (6 * 1024 * 1024), headers={"content-type": "application/json"})
            assert big.status_code == 413
            assert http.post("/v1/score", json={"text": "hi"}, headers={"Authorization": "Bearer wrong"}).status_code == 401
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_feedback_rows_hold_corpus_columns_for_retraining(tmp_path):
    record = add_feedback(tmp_path / "f.db", Item(text="hi", sender_connections=3), "spam", corrects="genuine")
    assert record.item["sender_connections"] == 3 and record.corrects == "genuine"
    with pytest.raises(ValueError, match="label"):
        add_feedback(tmp_path / "f.db", Item(text="hi"), "ham")
    assert list_feedback(tmp_path / "missing.db") == []
    assert VERSIONS_DIR == "versions"


def test_the_model_page_shows_whatever_figures_a_version_recorded(tiny_model, tmp_path):
    metrics = {"test_inboxes_export": {"n": 40, "macro_f1": 0.875}, "user_rows_cv": {"n": 12}}  # an older, thinner manifest
    save_model(tiny_model, tmp_path / "store", {**tiny_model.manifest, "version": "thin", "metrics": metrics})
    with TestClient(create_app(make_settings(tmp_path / "store", tmp_path))) as c:
        r = c.get("/ui/model")
    assert r.status_code == 200 and "0.875" in r.text and "user_rows_cv" in r.text
