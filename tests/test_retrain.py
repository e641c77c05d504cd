"""Retraining on a user's rows: validation, dedup, weighting, the gate, promotion, rollback, kills."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from app.artifact import (
    ModelError,
    current_version,
    list_versions,
    load_model,
    promote,
    read_history,
    rollback,
    save_model,
    sha256_file,
    version_status,
)
from app.batch import score_file
from app.corpus import load_inboxes, read_labelled_export, rendered_inboxes
from app.fast import FEATURES_VERSION
from app.gate import MIN_CHANCE_BETTER, Decision, guard_tolerance, judge
from app.metrics import chance_better
from app.retrain import RetrainError, retrain
from app.scoring import Scorer
from app.simulated import load_source, write_export
from app.train import rows_fingerprint, train_and_save

FIXTURES = Path(__file__).parent / "fixtures"
NEW_KIND = [json.loads(line) for line in (FIXTURES / "new_kind_community.jsonl").read_text().splitlines()]
ROOT = Path(__file__).parent.parent
# In this process: worker processes cost seconds to start; the killed-retrain test below runs them.
quiet = dict(log=lambda _: None, n_jobs=1)


def store_of(model, path: Path) -> Path:
    """A model store at `path` holding `model` as its current version, v0-tiny."""
    save_model(model, path, dict(model.manifest, version="v0-tiny"))
    return path


@pytest.fixture()
def store(tmp_path, tiny_model):
    """A model store holding the tiny model as the current version."""
    return store_of(tiny_model, tmp_path / "model")


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def snapshot(data_dir: Path, store: Path) -> dict:
    return {
        "current": current_version(store),
        "versions": sorted(p.name for p in (store / "versions").iterdir()),
        "files": sorted(str(p.relative_to(data_dir)) for p in data_dir.rglob("*") if p.is_file()),
    }


@pytest.mark.parametrize("norm", ["plain l2 norm", "unknown words in the norm"])
def test_an_unseen_inbox_labelled_by_its_owner_is_learnt(tiny_data_dir, tmp_path, request, norm):
    """The issue's promise on a small fixture: an inbox unlike the corpus, labelled by its owner, retrained on.

    Its held-out macro-F1 is measured as the gate measures it: every item scored by a candidate
    that never saw its conversation (grouped cross-validation), against the current model, which
    never saw any of it. On 90 rows that is steadier than one held-out half.

    With the shipped norm the candidate still learns, but on a 60-row corpus nearly every word of a
    held-out conversation is unknown and shrinks its features, so the gain is too small for the
    gate's 90% of resamples: promotion is asserted with the plain norm only.
    """
    store = store_of(
        request.getfixturevalue("tiny_model_plain_norm" if norm == "plain l2 norm" else "tiny_model"), tmp_path / "model"
    )
    write_export(load_source(FIXTURES / "user_inbox" / "u01-1.json"), tmp_path / "export")
    examples = [ex for ex in read_labelled_export(tmp_path / "export") if ex.item.text.strip()]
    path = tmp_path / "mine.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label", "sender_name", "conversation_id"])
        for ex in examples:
            writer.writerow([ex.item.text, ex.label, ex.item.sender_name, ex.item.sender_profile_url])

    report = retrain(tiny_data_dir, store, add=[path], **quiet)

    held_out = report.comparison["your new rows (candidate cross-validated)"]
    assert held_out["candidate"]["macro_f1"] > held_out["current"]["macro_f1"], held_out
    assert held_out["candidate"]["genuine_as_spam_rate"] <= held_out["current"]["genuine_as_spam_rate"]
    if norm != "plain l2 norm":
        return
    assert report.decision == "promoted", report.reason
    assert len(report.accepted) + len(report.duplicates) + len(report.conflicts) == len(examples) >= 80
    assert held_out["candidate"]["n"] == len(report.accepted)
    assert held_out["candidate"]["macro_f1"] > held_out["current"]["macro_f1"] + 0.05, held_out
    manifest = load_model(store).manifest
    assert manifest["base_version"] == "v0-tiny" and manifest["user_weighting"]["weight"] >= 1
    assert manifest["training_data"]["user_rows"] == len(report.accepted) and manifest["user_weighting"]["cv_by_share"]
    # the candidate's own figures only (the base's cross-validation is not its own), in the shape train writes
    assert set(manifest["metrics"]) == {"test_inboxes_export", "user_rows_cv"}
    assert all("needs_review_rate" in m and "per_class_f1" in m for m in manifest["metrics"].values())


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
        retrain(tiny_data_dir, store, add=[path], **quiet)
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
    report = retrain(tiny_data_dir, store, add=[write_jsonl(tmp_path / "dup.jsonl", rows)], dry_run=True, **quiet)
    assert len(report.duplicates) == 2
    assert len(report.conflicts) == 3
    assert len(report.accepted) == 5
    assert report.decision == "dry run" and current_version(store) == "v0-tiny"
    assert not (tiny_data_dir / "labelled").exists()


def test_a_file_of_known_rows_trains_nothing_and_says_so(tiny_data_dir, store, tmp_path):
    rows = [
        {"text": "Congrats on the new role!!", "label": "genuine"},
        {"text": "Congrats on the new role!! 🎉", "label": "genuine"},
    ]
    said: list[str] = []
    before = snapshot(tiny_data_dir, store)
    report = retrain(tiny_data_dir, store, add=[write_jsonl(tmp_path / "known.jsonl", rows)], log=said.append)
    assert report.decision == "nothing to do" and report.candidate_version is None
    assert "all 2 row(s) are duplicates of known rows" in said[-1] and "no model trained" in said[-1]
    assert snapshot(tiny_data_dir, store) == before


def test_score_output_with_a_label_column_is_accepted_as_it_is(tiny_data_dir, store, tmp_path, tiny_model):
    inbox = tmp_path / "inbox.csv"
    with open(inbox, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "sender_name"])
        for row in NEW_KIND[:12]:
            writer.writerow([row["text"], "Neighbour"])
    scored = tmp_path / "scored.csv"
    score_file(inbox, scored, scorer=Scorer(tiny_model), jobs=1)
    with open(scored, newline="", encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    assert [r["text"] for r in table] == [r["text"] for r in NEW_KIND[:12]]  # the whole text comes back
    for r, truth in zip(table, NEW_KIND[:12], strict=True):
        r["label"] = truth["label"].replace("_", " ").title() if len(table) % 2 else truth["label"]
    table[-1]["label"] = ""  # a row the user did not label
    with open(scored, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*table[0].keys()])
        writer.writeheader()
        writer.writerows(table)

    report = retrain(tiny_data_dir, store, add=[scored], dry_run=True, **quiet)

    assert len(report.accepted) == 11 and report.unlabelled == 1 and not report.conflicts


@pytest.mark.parametrize(
    ("user", "test", "n", "passed"),
    [
        (None, (0.95, 0.004, 0.946, 0.004), 0, True),  # a plain retrain may lose 0.5 points
        (None, (0.95, 0.004, 0.944, 0.004), 0, False),
        (None, (0.95, 0.004, 0.96, 0.008), 0, False),  # genuine-as-spam must not rise
        ((0.70, 0.05, 0.80, 0.05), (0.95, 0.004, 0.93, 0.01), 216, True),  # better on the user's rows: a guard only
        ((0.70, 0.05, 0.80, 0.05), (0.95, 0.004, 0.80, 0.01), 216, False),  # ...against collapse
        ((0.70, 0.05, 0.69, 0.00), (0.95, 0.004, 0.96, 0.004), 216, False),  # not better where the user cares
        ((0.70, 0.05, 0.80, 0.06), (0.95, 0.004, 0.96, 0.004), 216, False),  # more genuine filed as spam there
    ],
)
def test_the_gate_judges_the_users_rows_first_and_guards_with_the_test_inboxes(user, test, n, passed):
    def pair(v):
        return {
            "current": {"macro_f1": v[0], "genuine_as_spam_rate": v[1], "n": 300},
            "candidate": {"macro_f1": v[2], "genuine_as_spam_rate": v[3], "n": 300},
        }

    assert judge(pair(test), pair(user) if user else None, n).passed is passed


@pytest.mark.parametrize(("chance", "passed"), [(0.97, True), (0.9, True), (0.6, False), (None, True)])
def test_a_gain_on_the_users_rows_must_survive_resampling_them(chance, passed):
    user = {
        "current": {"macro_f1": 0.80, "genuine_as_spam_rate": 0.02, "n": 216},
        "candidate": {"macro_f1": 0.81, "genuine_as_spam_rate": 0.02, "n": 216},
    } | ({"chance_better": chance} if chance is not None else {})
    test = {k: {"macro_f1": 0.95, "genuine_as_spam_rate": 0.004, "n": 300} for k in ("current", "candidate")}

    decision = judge(test, user, 216)

    assert decision.passed is passed
    assert ("resamples" in decision.reason) is (chance is not None)


def _labels_with_errors(n: int, wrong: slice) -> tuple[np.ndarray, np.ndarray]:
    y = np.arange(n) % 3
    pred = y.copy()
    pred[wrong] = (y[wrong] + 1) % 3
    return y, pred


def test_the_paired_bootstrap_tells_a_real_gain_from_noise():
    y, current = _labels_with_errors(240, slice(0, 48))
    groups = [f"conversation-{i // 2}" for i in range(240)]
    fixes_half = current.copy()
    fixes_half[:24] = y[:24]
    one_for_one = current.copy()
    one_for_one[:2] = y[:2]  # two fixed...
    one_for_one[100] = (y[100] + 1) % 3  # ...one broken

    assert chance_better(y, current, current, groups) == 0.0
    assert chance_better(y, current, fixes_half, groups) == 1.0
    assert 0.3 < chance_better(y, current, one_for_one, groups) < MIN_CHANCE_BETTER
    assert chance_better(y, current, one_for_one, groups) == chance_better(y, current, one_for_one, groups)  # seeded


def test_the_test_guard_loosens_with_more_user_rows():
    assert (
        guard_tolerance(0)
        == 0.005
        < guard_tolerance(50)
        < guard_tolerance(216)
        < guard_tolerance(500)
        == guard_tolerance(5000)
        == 0.1
    )


def test_rollback_walks_back_and_never_forward_promote_goes_forward(tiny_data_dir, store, tmp_path, monkeypatch):
    monkeypatch.setattr("app.retrain.judge", lambda *a: Decision(False, "refused for the test"))
    rejected = retrain(tiny_data_dir, store, add=[write_jsonl(tmp_path / "a.jsonl", NEW_KIND[:10])], **quiet)
    assert rejected.decision == "rejected" and current_version(store) == "v0-tiny"
    monkeypatch.setattr("app.retrain.judge", lambda *a: Decision(True, "accepted for the test"))
    time.sleep(1.1)  # versions are named by the second
    v1 = retrain(tiny_data_dir, store, add=[write_jsonl(tmp_path / "b.jsonl", NEW_KIND[10:20])], **quiet).candidate_version
    time.sleep(1.1)
    v2 = retrain(tiny_data_dir, store, add=[write_jsonl(tmp_path / "c.jsonl", NEW_KIND[20:30])], **quiet).candidate_version
    assert current_version(store) == v2

    assert rollback(store) == (v2, v1)
    assert rollback(store) == (v1, "v0-tiny")  # a second rollback goes further back, not forward to v2
    with pytest.raises(Exception, match="no earlier version"):
        rollback(store)
    assert promote(store, v2) == ("v0-tiny", v2)
    statuses = {m["version"]: version_status(store, m) for m in list_versions(store)}
    assert statuses == {"v0-tiny": "replaced", rejected.candidate_version: "rejected", v1: "replaced", v2: "current"}


def test_a_version_trained_with_other_features_cannot_be_made_current(store, tiny_model):
    older = dict(tiny_model.manifest, version="v1-older", features_version=FEATURES_VERSION - 1)
    save_model(tiny_model, store, older, make_current=False)
    for move in (lambda: promote(store, "v1-older"), lambda: rollback(store, "v1-older")):
        with pytest.raises(ModelError, match="features version"):
            move()
        assert current_version(store) == "v0-tiny"


def test_train_goes_through_the_gate_and_records_its_promotion(tiny_data_dir, store, monkeypatch):
    monkeypatch.setattr("app.gate.judge", lambda *a: Decision(False, "refused for the test"))
    refused = train_and_save(tiny_data_dir, store, {"word_min_df": 1, "char_min_df": 1, "thread_min_df": 1}, folds=2, **quiet)
    assert refused.extra["outcome"] == "rejected" and current_version(store) == "v0-tiny"
    time.sleep(1.1)
    forced = train_and_save(tiny_data_dir, store, {"word_min_df": 1}, folds=2, force=True, **quiet)
    assert forced.extra["outcome"] == "promoted (forced)" and current_version(store) == forced.manifest["version"]
    last = read_history(store)[-1]
    assert last["action"] == "promote" and last["version"] == forced.manifest["version"] and last["previous"] == "v0-tiny"


@pytest.mark.parametrize(
    ("case", "judged", "outcome"),
    [
        ("recorded better", True, "rejected"),  # judged against what the old model recorded
        ("recorded worse", True, "promoted"),
        ("a label changed since", False, "promoted"),  # other test rows: nothing to compare with
        ("other scikit-learn, same features", False, "promoted"),  # only a features change uses recorded figures
    ],
)
def test_a_current_model_of_other_features_is_judged_by_the_figures_it_recorded(
    tiny_data_dir, store, tiny_model, monkeypatch, case, judged, outcome
):
    test = load_inboxes(rendered_inboxes(tiny_data_dir, "test"))
    if case == "a label changed since":
        flipped = "spam" if test[0].label != "spam" else "genuine"
        test = [dataclasses.replace(test[0], label=flipped), *test[1:]]
    older = dict(tiny_model.manifest, version="v1-older", test_data=rows_fingerprint(test))
    if case == "other scikit-learn, same features":
        older["versions"] = dict(older["versions"], scikit_learn="0.1.0")
    else:
        older["features_version"] = FEATURES_VERSION - 1  # this code cannot load it to score the test rows
    good = case != "recorded worse"
    figures = {"macro_f1": float(good), "genuine_as_spam_rate": float(not good), "accuracy": float(good), "n": len(test)}
    older["metrics"] = dict(older["metrics"], test_inboxes_export=figures)
    folder = save_model(tiny_model, store, older, make_current=False)
    (store / "CURRENT").write_text(f"v1-older {sha256_file(folder / 'manifest.json')}\n")
    seen = []
    refuse_if_good = lambda pair, *a: seen.append(pair) or (Decision(False, "refused") if good else judge(pair, *a))
    monkeypatch.setattr("app.gate.judge", refuse_if_good)
    result = train_and_save(tiny_data_dir, store, {"word_min_df": 1}, folds=2, **quiet)
    assert result.extra["outcome"] == outcome and bool(seen) == judged
    if judged:
        assert seen[0]["current"]["macro_f1"] == float(good)
        assert "v1-older's recorded figures" in result.manifest["gate"]["reason"]
        assert read_history(store)[-1]["previous"] == "v1-older"
    assert current_version(store) == ("v1-older" if outcome == "rejected" else result.manifest["version"])


def _retrain_command(path: Path, data: Path, store: Path) -> list[str]:
    return [sys.executable, "-m", "app.cli", "retrain", "--add", str(path), "--force", "--data", str(data), "--model", str(store)]


@pytest.mark.parametrize("crash_at", ["before-version-rename", "before-pointer-rename"])
def test_a_retrain_killed_during_promotion_leaves_the_current_model_intact(tiny_data_dir, store, tmp_path, crash_at):
    path = write_jsonl(tmp_path / "new.jsonl", NEW_KIND[:10])
    env = dict(os.environ, TRIAGE_CRASH_AT=crash_at)
    with open(tmp_path / "retrain.log", "w") as log:
        proc = subprocess.run(
            _retrain_command(path, tiny_data_dir, store), env=env, stdout=log, stderr=subprocess.STDOUT, timeout=120, cwd=ROOT
        )
    assert proc.returncode == -9, (tmp_path / "retrain.log").read_text()  # killed at the checkpoint
    assert current_version(store) == "v0-tiny" and load_model(store).version == "v0-tiny"
    assert not [e for e in read_history(store) if e["action"] == "promote"]  # nothing listed as promoted
    for manifest in list_versions(store):  # whatever was written is complete and verifies, or is hidden
        load_model(store / "versions" / manifest["version"])
        assert version_status(store, manifest) in {"current", "candidate"}


def _children(pid: int) -> set[int]:
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_retrain_killed_while_training_leaves_no_workers_and_no_temporary_files(tiny_data_dir, store, tmp_path):
    path = write_jsonl(tmp_path / "new.jsonl", NEW_KIND)
    env = dict(os.environ, TMPDIR=str(tmp_path / "tmp"), TRIAGE_TRAIN_JOBS="2")  # the workers this test kills
    (tmp_path / "tmp").mkdir()
    with open(tmp_path / "retrain.log", "w") as log:
        proc = subprocess.Popen(
            _retrain_command(path, tiny_data_dir, store), env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
        )
    workers: set[int] = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(workers) < 2 and proc.poll() is None:
        workers |= _children(proc.pid)
        time.sleep(0.05)
    assert workers and proc.poll() is None, "the retrain never started its workers"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.1)
    assert not [w for w in workers if _alive(w)], "worker processes outlived the killed retrain"
    assert not list((tmp_path / "tmp").iterdir())
    assert not [p for p in (store / "versions").iterdir() if p.name.startswith(".")]
    assert current_version(store) == "v0-tiny" and not [e for e in read_history(store) if e["action"] == "promote"]
