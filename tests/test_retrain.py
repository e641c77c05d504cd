"""Retraining: validation, dedup, the gate, promotion, rollback and crash safety (tiny inboxes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.artifact import current_version, list_versions, load_model, rollback, save_model
from app.items import Item
from app.retrain import RetrainError, gate, retrain

FIXTURES = Path(__file__).parent / "fixtures"
NEW_KIND = [json.loads(line) for line in (FIXTURES / "new_kind_community.jsonl").read_text().splitlines()]


@pytest.fixture()
def store(tmp_path, tiny_model):
    """A model store holding the tiny model as the current version."""
    path = tmp_path / "model"
    save_model(tiny_model, path, dict(tiny_model.manifest, version="v0-tiny"))
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def accuracy(model, rows: list[dict]) -> float:
    verdicts = model.verdicts([Item(text=r["text"]) for r in rows], n_reasons=0)
    return sum(v.verdict == r["label"] for v, r in zip(verdicts, rows, strict=True)) / len(rows)


def snapshot(data_dir: Path, store: Path) -> dict:
    return {
        "current": current_version(store),
        "versions": sorted(p.name for p in (store / "versions").iterdir()),
        "files": sorted(str(p.relative_to(data_dir)) for p in data_dir.rglob("*") if p.is_file()),
        "corpus": (data_dir / "corpus.csv").read_bytes(),
    }


def test_thirty_examples_of_a_new_kind_are_learnt(tiny_data_dir, store, tmp_path):
    train_rows, held_out = NEW_KIND[:30], NEW_KIND[30:]
    before = accuracy(load_model(store), held_out)
    report = retrain(tiny_data_dir, store, add=[write_jsonl(tmp_path / "new.jsonl", train_rows)], force=True, log=lambda _: None)
    assert len(report.accepted) == 30 and report.decision.startswith("promoted")
    after = accuracy(load_model(store), held_out)
    assert before <= 0.7 and after >= 0.9, (before, after)
    assert current_version(store) == report.candidate_version != "v0-tiny"
    user_files = list((tiny_data_dir / "labelled" / "user").glob("*.csv"))
    assert len(user_files) == 1 and "origin" in user_files[0].read_text().splitlines()[0]


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        ([{"text": "hello there", "label": "friendly"}], "label 'friendly'"),
        ([{"text": "", "kind": "message", "label": "genuine"}], "text: empty"),
        ([{"text": "hi", "label": "spam", "sender": {"connections": "many"}}], "connections"),
    ],
)
def test_a_bad_label_file_changes_nothing(tiny_data_dir, store, tmp_path, rows, problem):
    good = [{"text": "see you at the meetup next week!", "label": "genuine"}]
    path = write_jsonl(tmp_path / "bad.jsonl", good + rows)
    before = snapshot(tiny_data_dir, store)
    with pytest.raises(RetrainError, match=problem) as err:
        retrain(tiny_data_dir, store, add=[path], log=lambda _: None)
    assert f"{path}:2" in str(err.value)
    assert snapshot(tiny_data_dir, store) == before


def test_duplicates_and_conflicts_are_reported_and_skipped(tiny_data_dir, store, tmp_path):
    rows = [
        {"text": "Congrats on the new role!!", "label": "genuine"},  # exact duplicate of the corpus
        {"text": "Congrats on the new role!! 🎉", "label": "genuine"},  # near duplicate
        {"text": "Please follow my page and subscribe to my YouTube channel for daily tips!", "label": "genuine"},
        {"text": "brand new text about a bake sale", "label": "genuine"},
        {"text": "Brand new text about a bake sale", "label": "sales_pitch"},
        *NEW_KIND[:5],
    ]
    report = retrain(tiny_data_dir, store, add=[write_jsonl(tmp_path / "dup.jsonl", rows)], dry_run=True, log=lambda _: None)
    assert len(report.duplicates) == 2
    assert len(report.conflicts) == 3
    assert len(report.accepted) == 5
    assert report.decision.startswith("dry run") and current_version(store) == "v0-tiny"
    assert not (tiny_data_dir / "labelled").exists()


def test_the_gate_refuses_a_worse_model():
    current = {"macro_f1": 0.95, "genuine_as_spam_rate": 0.004}
    assert gate(current, {"macro_f1": 0.946, "genuine_as_spam_rate": 0.004})[0]
    assert not gate(current, {"macro_f1": 0.944, "genuine_as_spam_rate": 0.0})[0]
    assert not gate(current, {"macro_f1": 0.96, "genuine_as_spam_rate": 0.008})[0]


def test_rejected_candidates_are_kept_and_rollback_restores(tiny_data_dir, store, tmp_path, monkeypatch):
    monkeypatch.setattr("app.retrain.gate", lambda cur, cand: (False, "refused for the test"))
    path = write_jsonl(tmp_path / "new.jsonl", NEW_KIND[:10])
    report = retrain(tiny_data_dir, store, add=[path], log=lambda _: None)
    assert report.decision == "rejected" and current_version(store) == "v0-tiny"
    statuses = {m["version"]: m.get("status") for m in list_versions(store)}
    assert statuses[report.candidate_version] == "rejected"

    monkeypatch.setattr("app.retrain.gate", lambda cur, cand: (True, "accepted for the test"))
    promoted = retrain(tiny_data_dir, store, add=[write_jsonl(tmp_path / "more.jsonl", NEW_KIND[10:20])], log=lambda _: None)
    assert current_version(store) == promoted.candidate_version
    assert rollback(store) == (promoted.candidate_version, "v0-tiny")
    assert load_model(store).version == "v0-tiny"


@pytest.mark.parametrize("crash_at", ["before-version-rename", "before-pointer-rename"])
def test_a_retrain_killed_during_promotion_leaves_the_current_model_intact(tiny_data_dir, store, tmp_path, crash_at):
    path = write_jsonl(tmp_path / "new.jsonl", NEW_KIND[:10])
    env = dict(os.environ, TRIAGE_CRASH_AT=crash_at)
    cmd = [
        sys.executable,
        "-m",
        "app.cli",
        "retrain",
        "--add",
        str(path),
        "--force",
        "--data",
        str(tiny_data_dir),
        "--model",
        str(store),
    ]
    # Output to a file, not a pipe: worker processes outlive a killed parent and would hold a pipe open.
    with open(tmp_path / "retrain.log", "w") as log:
        proc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=120, cwd=Path(__file__).parent.parent)
    assert proc.returncode == -9, (tmp_path / "retrain.log").read_text()  # killed at the checkpoint
    assert current_version(store) == "v0-tiny"
    assert load_model(store).version == "v0-tiny"
    for manifest in list_versions(store):  # whatever was written is complete and verifies, or is hidden
        load_model(store / "versions" / manifest["version"])
