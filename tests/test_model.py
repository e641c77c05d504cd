"""The model on a tiny corpus: exact explanations, calibration plumbing, determinism, artifact."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sklearn

from app.artifact import MANIFEST_FILE, MODEL_FILE, ModelError, current_version, list_versions, load_model, save_model
from app.features import Item
from app.model import LABELS, Thresholds, decide, decide_one, softmax
from app.train import train_model

ITEMS = [
    Item(text="Congrats on the new role, well deserved!"),
    Item(text="Hi {first_name}, we help companies like yours. 15 minutes? calendly.com/x/15min"),
    Item(text="Earn $500 per day from home, pay the fee and message me on Telegram t.me/x"),
    Item(text="", kind="invite", sender_has_photo=False, sender_connections=2, mutual_connections=0),
    Item(text="Hola, nos conocimos en el evento de Madrid. ¡Un placer!"),
]


@pytest.mark.parametrize("item", ITEMS)
def test_contributions_sum_to_the_decision_values(tiny_model, item):
    explanation = tiny_model.explain(item)
    pipeline_values = tiny_model.decision_values([item])[0]
    for k, cls in enumerate(explanation.classes):
        total = cls.intercept + sum(c.contribution for c in cls.contributions)
        assert total == pytest.approx(cls.decision_value, abs=1e-6)
        assert cls.decision_value == pytest.approx(pipeline_values[k], abs=1e-6)
        for c in cls.contributions:
            assert c.contribution != 0 and c.description
    scores = softmax(np.array([c.decision_value for c in explanation.classes]))
    assert [explanation.verdict.scores[lab] for lab in LABELS] == pytest.approx(scores.tolist())


def test_reasons_support_the_verdict_and_point_at_text(tiny_model):
    item = ITEMS[2]
    verdict = tiny_model.score_item(item)
    assert sum(verdict.scores.values()) == pytest.approx(1.0)
    assert verdict.reasons and all(r.contribution > 0 for r in verdict.reasons)
    for r in verdict.reasons:
        for span in r.spans:
            assert item.text[span.start : span.end] == span.text
    assert verdict.summary and verdict.model_version == "tiny-test"


def test_spam_needs_its_threshold_or_goes_to_review():
    proba = np.array([[0.30, 0.10, 0.60], [0.05, 0.05, 0.90], [0.40, 0.35, 0.25]])
    verdict, review = decide(proba, Thresholds(review=0.5, spam=0.7))
    assert [LABELS[v] for v in verdict] == ["genuine", "spam", "genuine"]
    assert review.tolist() == [True, False, True]


@pytest.mark.parametrize("seed", range(5))
def test_the_single_item_rule_is_the_batch_rule(seed):
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet([0.5, 0.5, 0.5], size=200)
    proba[:10] = [1 / 3, 1 / 3, 1 / 3]  # ties
    thresholds = Thresholds(review=0.55, spam=0.7)
    verdicts, reviews = decide(proba, thresholds)
    assert [decide_one(p.tolist(), thresholds) for p in proba] == list(zip(verdicts.tolist(), reviews.tolist(), strict=True))


def test_training_is_deterministic(tiny_frame, tiny_model):
    again = train_model(tiny_frame, folds=3, version="again").model
    assert np.array_equal(again.predict_proba(ITEMS), tiny_model.predict_proba(ITEMS))
    assert again.thresholds == tiny_model.thresholds


def test_saved_model_round_trips_and_becomes_current(tmp_path, tiny_model):
    path = save_model(tiny_model, tmp_path, dict(tiny_model.manifest, version="v1"))
    assert current_version(tmp_path) == "v1"
    loaded = load_model(tmp_path)
    assert np.allclose(loaded.predict_proba(ITEMS), tiny_model.predict_proba(ITEMS))
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    for key in (
        "version",
        "created_at",
        "git_commit",
        "versions",
        "labels",
        "training_data",
        "metrics",
        "thresholds",
        "artifact_sha256",
    ):
        assert key in manifest
    assert [m["version"] for m in list_versions(tmp_path)] == ["v1"]


def test_tampered_artifact_is_refused_before_unpickling(tmp_path, tiny_model, monkeypatch):
    path = save_model(tiny_model, tmp_path, dict(tiny_model.manifest, version="v1"))
    with open(path / MODEL_FILE, "ab") as fh:
        fh.write(b"\0")
    unpickled = []
    monkeypatch.setattr("app.artifact.joblib.load", lambda *a, **k: unpickled.append(a))
    with pytest.raises(ModelError, match="does not match its manifest"):
        load_model(tmp_path)
    assert unpickled == []


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [(("versions", "scikit_learn"), "0.24.2", sklearn.__version__), (("features_version",), 1, "features version 1")],
)
def test_a_model_from_other_code_is_refused_with_a_way_out(tmp_path, tiny_model, field, value, named):
    path = save_model(tiny_model, tmp_path, dict(tiny_model.manifest, version="v1"))
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    target = manifest
    for key in field[:-1]:
        target = target[key]
    target[field[-1]] = value
    (path / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="triage train") as err:
        load_model(tmp_path)
    assert named in str(err.value)


def test_missing_or_bad_store_gives_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="triage train"):
        load_model(tmp_path)
    (tmp_path / "CURRENT").write_text("../evil\n")
    with pytest.raises(ModelError, match="invalid version"):
        load_model(tmp_path)
