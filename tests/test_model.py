"""The model on tiny inboxes: exact explanations, readable reasons, the abstain rule, determinism, artifact."""

from __future__ import annotations

import json
import pickle
import time
import zipfile

import numpy as np
import pytest
import sklearn

from app.artifact import (
    MANIFEST_FILE,
    MODEL_FILE,
    SERVING_FILE,
    ModelError,
    current_version,
    list_versions,
    load_model,
    read_thresholds,
    save_model,
    sha256_file,
)
from app.corpus import Example
from app.items import Item
from app.model import LABELS, NO_READABLE_EVIDENCE, Thresholds, is_content, softmax, whole_korean_words
from app.signals import text_signal_values
from app.text import prepare
from app.train import (
    DEFAULT_PARAMS,
    GENUINE_AS_SPAM_TARGET,
    SPAM_THRESHOLD_FLOOR,
    choose_thresholds,
    text_only_label,
    text_only_labels,
    text_view_labels,
)
from tests.conftest import train_tiny

ITEMS = [
    Item(text="Congrats on the new role, well deserved!"),
    Item(text="Hi {first_name}, we help companies like yours. 15 minutes? calendly.com/x/15min"),
    Item(text="Earn $500 per day from home, pay the fee and message me on Telegram t.me/x"),
    Item(text="ok", owner_messages_before=2, sender_messages_before=1, owner_replied_after=True, earlier_text="see you at 5"),
    Item(text="Hola, nos conocimos en el evento de Madrid. ¡Un placer!", kind="invite"),
]


@pytest.mark.parametrize("item", ITEMS)
def test_contributions_sum_to_the_decision_values(tiny_model, item):
    explanation = tiny_model.explain(item)
    pipeline_values = tiny_model.pipeline.decision_function([item])[0]
    for k, cls in enumerate(explanation.classes):
        total = cls.intercept + sum(c.contribution for c in cls.contributions)
        assert total == pytest.approx(cls.decision_value, abs=1e-6)
        assert cls.decision_value == pytest.approx(pipeline_values[k], abs=1e-9)
        for c in cls.contributions:
            assert c.contribution != 0 and c.description
    scores = softmax(np.array([c.decision_value for c in explanation.classes]))
    assert [explanation.verdict.scores[lab] for lab in LABELS] == pytest.approx(scores.tolist())


def test_the_matrix_path_equals_the_pipeline(tiny_model):
    items = ITEMS * 3
    assert np.allclose(tiny_model.predict_proba(items), tiny_model.pipeline.predict_proba(items), atol=1e-9)


def test_reasons_support_the_verdict_point_at_text_and_read_as_words(tiny_model):
    item = ITEMS[2]
    verdict = tiny_model.verdicts([item])[0]
    assert sum(verdict.scores.values()) == pytest.approx(1.0)
    assert verdict.reasons and all(r.contribution > 0 for r in verdict.reasons)
    for r in verdict.reasons:
        assert not r.feature.startswith(("char__", "word__"))  # phrases, signals or context: never letter fragments
        for span in r.spans:
            assert item.text[span.start : span.end] == span.text
    assert verdict.summary.startswith("Looks like") and verdict.model_version == "tiny-test"


def test_a_verdict_with_no_readable_evidence_says_so_instead_of_nothing(tiny_model):
    item = Item(text="how are you?", kind="message")  # function words only: no phrase a reader could check

    explained, plain = tiny_model.verdicts([item])[0], tiny_model.verdicts([item], n_reasons=0)[0]

    assert explained.reasons == () and NO_READABLE_EVIDENCE in explained.summary
    assert NO_READABLE_EVIDENCE not in plain.summary and plain.verdict == explained.verdict  # not asked, not claimed
    reasoned = tiny_model.verdicts([ITEMS[2]])[0]
    assert reasoned.reasons and NO_READABLE_EVIDENCE not in reasoned.summary


@pytest.mark.parametrize(
    ("word", "content"),
    [
        ("投资", True),
        ("的", False),
        ("您", True),
        ("いた", False),
        ("の", False),
        ("営業", True),
        ("가능합니다", True),
        ("fee", True),
        ("the", False),
    ],
)
def test_reasons_skip_function_words_and_japanese_endings(word, content):
    assert is_content(word) is content


@pytest.mark.parametrize(("start", "end", "shown"), [(9, 10, "가능합니다"), (0, 2, "무료"), (3, 5, "데모"), (12, 14, "ok")])
def test_a_korean_phrase_is_shown_as_whole_words(start, end, shown):
    text = "무료 데모 가능합니다 ok"
    assert text[slice(*whole_korean_words(text, start, end))] == shown


@pytest.mark.parametrize(
    "text",
    [
        "李总您好，我是红杉资本的投资经理，关注贵司很久了，方便加个微信聊聊吗？",
        "弊社のSaaSで御社の営業効率を30%改善できます。15分だけお時間いただけますか？",
    ],
)
def test_reasons_for_text_without_spaces_quote_words_not_the_sentence(shipped_model, text):
    verdict = shipped_model.verdicts([Item(text=text)])[0]
    phrases = [r for r in verdict.reasons if r.feature.startswith("text:")]
    assert all(len(span.text) <= 12 for r in phrases for span in r.spans)


@pytest.mark.parametrize("text", ["hi", "Hello sir 👋", "Good morning", "Hi Priya, how are you?"])
def test_a_bare_greeting_is_read_as_one_signal_not_as_words(text):
    prepared = prepare(Item(text=text))
    assert prepared.norm == ""  # no word or character n-gram: "hi" says the same in every message
    assert text_signal_values(prepared)["greeting_only"] == 1.0


@pytest.mark.parametrize(
    ("text", "label", "copy_label"),
    [
        ("hi", "spam", "genuine"),
        ("Hello sir", "spam", "genuine"),
        ("hi dear", "spam", "spam"),
        ("Ji sir", "sales_pitch", "sales_pitch"),
        ("ok dear", "spam", "genuine"),
        ("Are you there?", "spam", "genuine"),
        ("No worries!", "sales_pitch", "genuine"),
        ("ok sir. minimum is only $1000", "spam", "spam"),
    ],
)
def test_the_text_only_copy_of_a_bare_greeting_or_reply_is_genuine(text, label, copy_label):
    example = Example(Item(text=text, owner_messages_before=1), label, "inbox-1", "h01", "scammer")
    assert text_only_label(example) == copy_label  # the row read with its thread keeps `label`


@pytest.mark.parametrize(
    ("text", "earlier_turns", "label", "copy_label"),
    [
        ("Alles klar!", 1, "sales_pitch", "genuine"),  # a seller's courtesy turn, read alone
        ("Noted madam, maybe in future 🙏", 2, "sales_pitch", "genuine"),
        ("Sin problema, te guardo en el radar", 1, "sales_pitch", "genuine"),
        ("Alles klar!", 0, "sales_pitch", "sales_pitch"),  # an opener is no reply to anything
        ("pay 50 USD today", 1, "spam", "spam"),  # a digit: an amount, a date, a code
        ("Join my crypto group on Telegram", 1, "spam", "spam"),  # signs of a scheme
        ("book a demo here", 1, "sales_pitch", "sales_pitch"),  # a sign of a sale
        ("Thanks! Our agency also does SEO audits for clinics", 1, "sales_pitch", "sales_pitch"),  # not short
        ("Happy to help with the referral", 1, "genuine", "genuine"),
    ],
)
def test_the_text_only_copy_of_a_plain_short_later_turn_is_genuine(text, earlier_turns, label, copy_label):
    item = Item(text=text, sender_messages_before=earlier_turns, owner_messages_before=1)
    example = Example(item, label, "inbox-1", "h01", "seller")
    assert text_only_labels([example], plain_turns=True) == [copy_label]  # LABELS.md: "with no sign of a scheme or a sale"
    assert text_only_labels([example], plain_turns=False) == [text_only_label(example)]


def test_the_text_view_is_calibrated_against_the_labels_its_copies_were_trained_towards():
    turn = Example(
        Item(text="Alles klar!", sender_messages_before=1, owner_messages_before=1), "sales_pitch", "i-1", "h01", "seller"
    )
    opener = Example(Item(text="Alles klar!"), "sales_pitch", "i-1", "h01", "seller")  # no context: no copy
    assert text_view_labels([turn, opener], {**DEFAULT_PARAMS, "plain_short_turns": True}) == ["genuine", "sales_pitch"]
    assert text_view_labels([turn], {**DEFAULT_PARAMS, "plain_short_turns": False}) == ["sales_pitch"]


def test_the_spam_threshold_rises_until_few_genuine_messages_are_filed_as_spam():
    # 1,000 genuine rows, six of them leaning spam (p 0.55-0.80), and 100 clear spam rows
    genuine_spam = [0.55, 0.6, 0.65, 0.7, 0.75, 0.8]
    p_spam = np.array([0.1] * (1000 - len(genuine_spam)) + genuine_spam + [0.95] * 100)
    proba = np.column_stack([(1 - p_spam) * 0.8, (1 - p_spam) * 0.2, p_spam])
    y = np.array([0] * 1000 + [2] * 100)
    allowed = int(GENUINE_AS_SPAM_TARGET * 1000)
    chosen = choose_thresholds(proba, y).spam
    assert chosen > SPAM_THRESHOLD_FLOOR
    assert sum(p >= chosen for p in genuine_spam) <= allowed < sum(p >= chosen - 0.01 for p in genuine_spam)


@pytest.mark.parametrize("value", ["x", None, -0.1, 1.5, True])
def test_thresholds_outside_zero_to_one_are_refused(value):
    with pytest.raises(ValueError, match=r"thresholds\.review"):
        Thresholds(review=value, spam=0.5)


@pytest.mark.parametrize("n_jobs", [1, 2], ids=["in this process", "in worker processes"])
def test_training_is_deterministic(tiny_examples, tiny_first_contacts, tiny_model, n_jobs):
    again = train_tiny(tiny_examples, tiny_first_contacts, n_jobs=n_jobs)
    if n_jobs == 1:
        assert np.array_equal(again.predict_proba(ITEMS), tiny_model.predict_proba(ITEMS))
    else:  # the workers run one BLAS thread each, so sums may be added in another order: equal to rounding
        assert np.allclose(again.predict_proba(ITEMS), tiny_model.predict_proba(ITEMS), rtol=0, atol=1e-9)
    assert again.thresholds == tiny_model.thresholds


def test_scoring_an_adversarial_text_costs_about_an_ordinary_one(tiny_model):
    def seconds(text: str) -> float:
        start = time.perf_counter()
        tiny_model.verdicts([Item(text=text)])
        return time.perf_counter() - start

    ordinary = ("We met at the meetup, here is my deck https://x.example/d thanks! " * 400)[:20_000]
    baseline = min(seconds(ordinary) for _ in range(2))
    for text in ("{{" + " " * 19_998, "@ " + "a." * 9_999, "a-" * 10_000, "<a " + "x" * 19_997):
        assert seconds(text) < 10 * baseline + 0.1


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


def test_thresholds_are_read_from_the_manifest_without_loading_the_model(tmp_path, tiny_model):
    manifest = dict(tiny_model.manifest, version="v1", thresholds={"review": 0.81, "spam": 0.63})
    path = save_model(tiny_model, tmp_path, manifest)
    (path / MODEL_FILE).write_bytes(b"not a model")  # read_thresholds must not touch the artifact
    assert read_thresholds(tmp_path) == Thresholds(review=0.81, spam=0.63)
    with pytest.raises(ModelError):
        load_model(tmp_path)


def test_tampered_artifact_is_refused_before_loading(tmp_path, tiny_model, monkeypatch):
    path = save_model(tiny_model, tmp_path, dict(tiny_model.manifest, version="v1"))
    with open(path / MODEL_FILE, "ab") as fh:
        fh.write(b"\0")
    loaded = []
    monkeypatch.setattr("skops.io.loads", lambda *a, **k: loaded.append(a))
    with pytest.raises(ModelError, match="does not match its manifest"):
        load_model(tmp_path)
    assert loaded == []


def test_a_model_file_naming_a_type_that_runs_code_is_refused_even_with_a_matching_hash(tmp_path, tiny_model):
    path = save_model(tiny_model, tmp_path, dict(tiny_model.manifest, version="v1"))
    artifact = path / MODEL_FILE
    with zipfile.ZipFile(artifact) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    schema = json.loads(members["schema.json"])
    schema["__module__"], schema["__class__"] = "os", "system"  # what a malicious file would ask for
    members["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(artifact, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    manifest["artifact_sha256"] = sha256_file(artifact)
    (path / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="does not match the hash in CURRENT"):
        load_model(tmp_path)  # through the store: CURRENT's hash of the manifest catches the change first
    with pytest.raises(ModelError, match="does not trust"):
        load_model(path, pipeline=True)  # even given the version folder itself, the file's types are refused
    with pytest.raises(ModelError, match="does not trust"):
        _ = load_model(path).pipeline  # and when scoring's model is asked for its pipeline later


class _RunsCode:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_in_place_of_the_model_runs_nothing(tmp_path, tiny_model):
    path = save_model(tiny_model, tmp_path / "store", dict(tiny_model.manifest, version="v1"))
    marker = tmp_path / "pwned"
    (path / MODEL_FILE).write_bytes(pickle.dumps(_RunsCode(str(marker))))
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    manifest["artifact_sha256"] = sha256_file(path / MODEL_FILE)
    (path / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="not a readable model file"):
        load_model(path, pipeline=True)
    assert not marker.exists()


def test_serving_arrays_holding_a_pickle_are_refused_and_run_nothing(tmp_path, tiny_model):
    path = save_model(tiny_model, tmp_path / "store", dict(tiny_model.manifest, version="v1"))
    marker = tmp_path / "pwned"
    np.savez(path / SERVING_FILE, blocks=np.array([_RunsCode(str(marker))], dtype=object))
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    with pytest.raises(ModelError, match="does not match its manifest"):
        load_model(path)
    manifest["serving_sha256"] = sha256_file(path / SERVING_FILE)
    (path / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match=f"{SERVING_FILE} does not load"):
        load_model(path)
    assert not marker.exists()


def test_a_loaded_model_scores_without_its_pipeline_and_reads_it_on_demand(tmp_path, tiny_model, monkeypatch):
    save_model(tiny_model, tmp_path, dict(tiny_model.manifest, version="v1"))  # promotion reads the pipeline once
    loaded = []
    real_loads = __import__("skops.io", fromlist=["loads"]).loads
    monkeypatch.setattr("skops.io.loads", lambda *a, **k: loaded.append(a) or real_loads(*a, **k))
    model = load_model(tmp_path)
    assert np.allclose(model.predict_proba(ITEMS), tiny_model.predict_proba(ITEMS), atol=1e-12)
    assert loaded == []
    assert np.allclose(model.pipeline.predict_proba(ITEMS), tiny_model.predict_proba(ITEMS), atol=1e-9)
    assert len(loaded) == 1


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
        load_model(path)
    assert named in str(err.value)


def test_missing_or_bad_store_gives_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="triage train"):
        load_model(tmp_path)
    (tmp_path / "CURRENT").write_text("../evil\n")
    with pytest.raises(ModelError, match="is not a version name"):
        load_model(tmp_path)
