"""The serving features equal the fitted pipeline's, on any text, and survive their .npz form."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.fast import FastFeatures, FittedParts
from app.features import make_features
from app.items import LABELS, Item
from app.model import TriageModel
from app.text import prepare

TEXTS = [
    "Congrats on the new role, well deserved!",
    "Hi {first_name}, we help companies like yours. 15 minutes? calendly.com/x/15min",
    "Earn $500 per day from home, pay the fee and message me on Telegram t.me/x",
    "ok 👍",
    "",
    "   ",
    "a b c d",
    "Hola, nos conocimos en el evento de Madrid. ¡Un placer!",
    "नमस्ते sir, kya aap free ho? 🙏🙏",
    "𝐄𝐚𝐫𝐧 𝐝𝐚𝐢𝐥𝐲 with crypto – DM me",
    "word_with_underscore __ _ x_y tab\tand\u00a0nbsp\u2003em-space",
    "Ｆｕｌｌ ｗｉｄｔｈ and \u0130stanbul ΣΊΣΥΦΟΣ",
    "line one\n\nline two\r\nline three",
    "a" * 300 + " " + "b" * 70,
    "陈总，下周团建定在大鹏了？ 副業です ｶﾀｶﾅ 안녕하세요 a中b 中文abc",  # a word per character in these scripts
    "<p>Sponsored <a href='https://x.example/y'>link</a></p>&amp; more",
]


@pytest.fixture(
    scope="module",
    params=[(False, 1.0), (True, 1.0), (True, 2.5)],
    ids=["l2 norm", "unseen words in the norm", "a weighted thread block"],
)
def fitted(request):
    items = [Item(text=t, earlier_text="earlier words here, then more") for t in TEXTS] * 2
    unseen_in_norm, thread_weight = request.param
    settings = {"unseen_in_norm": unseen_in_norm, "thread_weight": thread_weight}
    return make_features(word_min_df=1, char_min_df=1, thread_min_df=1, **settings).fit(items)


def _items(texts):
    return [Item(text=t, earlier_text=t[::-1] if i % 2 else None) for i, t in enumerate(texts)]


def test_fast_features_equal_the_pipeline_on_the_training_texts(fitted):
    fast = FastFeatures(FittedParts.from_union(fitted[-1]))
    items = _items(TEXTS)
    diff = fast.transform([prepare(it) for it in items]) - fitted.transform(items)
    assert diff.nnz == 0 or abs(diff).max() < 1e-12


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.text(alphabet=st.characters(codec="utf-8"), max_size=80)
        | st.text(alphabet="陈总团建中文a b?！ｶ안녕々〇ーकीा\u0301\u0e31กé", max_size=30),
        min_size=1,
        max_size=6,
    )
)
def test_fast_features_equal_the_pipeline_on_any_text(fitted, texts):
    fast = FastFeatures(FittedParts.from_union(fitted[-1]))
    items = _items(texts)
    diff = fast.transform([prepare(it) for it in items]) - fitted.transform(items)
    assert diff.nnz == 0 or abs(diff).max() < 1e-12


def test_the_npz_form_gives_the_same_parts_without_pickle(tiny_model):
    restored = TriageModel(None, tiny_model.thresholds, tiny_model.manifest, serving=tiny_model.serving_bytes())
    items = _items(TEXTS)
    assert np.array_equal(restored.feature_names, tiny_model.pipeline[:-1].get_feature_names_out())
    assert np.allclose(restored.predict_proba(items), tiny_model.pipeline.predict_proba(items), atol=1e-9)
    assert [v.reasons for v in restored.verdicts(items)] == [v.reasons for v in tiny_model.verdicts(items)]
    scores = [[v.scores[label] for label in LABELS] for v in restored.verdicts(items)]  # the block-wise decision path
    assert np.allclose(scores, tiny_model.pipeline.predict_proba(items), atol=1e-9)
    with pytest.raises(ValueError, match="pipeline"):
        _ = restored.pipeline


def test_feature_names_from_a_column_are_the_tail_of_all_names(tiny_model):
    names = tiny_model.pipeline[:-1].get_feature_names_out()
    for start in sorted({0, 1, *tiny_model.parts.offsets.values(), len(names) - 1}):
        assert np.array_equal(tiny_model.parts.feature_names(start), names[start:])


def test_the_shipped_model_scores_as_its_pipeline(shipped_model):
    items = _items(TEXTS)
    assert np.allclose(shipped_model.predict_proba(items), shipped_model.pipeline.predict_proba(items), atol=1e-9)


@pytest.mark.parametrize(("unseen_in_norm", "thread_weight"), [(False, 1.0), (True, 1.0), (True, 0.5)])
def test_terms_holding_any_character_and_the_norm_survive_the_npz_form(unseen_in_norm, thread_weight):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    texts = ["hello there \x00 friend", "buy now \x00 cheap", "spam spam \x00", "hi friend", "cheap deal", "free money"] * 2
    items = [Item(text=t, earlier_text="earlier words here") for t in texts]
    settings = {"unseen_in_norm": unseen_in_norm, "thread_weight": thread_weight}
    features = make_features(word_min_df=1, char_min_df=1, thread_min_df=1, **settings)
    pipe = Pipeline([*features.steps, ("clf", LogisticRegression())]).fit(items, list(LABELS) * 4)
    restored = TriageModel(None, serving=TriageModel(pipe).serving_bytes())
    unseen = [Item(text="takk fyrir, cheap friend!", earlier_text="unseen earlier words")]  # words it never saw
    assert np.allclose(restored.predict_proba(items + unseen), pipe.predict_proba(items + unseen), atol=1e-9)


def test_serving_arrays_that_do_not_fit_together_are_refused(tiny_model):
    import io

    with np.load(io.BytesIO(tiny_model.serving_bytes()), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["word.idf"] = arrays["word.idf"][:-1]
    out = io.BytesIO()
    np.savez(out, **arrays)
    with pytest.raises(ValueError, match="do not fit"):
        TriageModel(None, serving=out.getvalue())
