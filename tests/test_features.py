"""The feature pipeline: scikit-learn parts, named features, and word evidence that adds up."""

from __future__ import annotations

import re

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils import estimator_checks

from app.fast import FastFeatures, FittedParts
from app.features import BLOCKS, ContextTransformer, ItemPreparer, SignalTransformer, TextVectorizer, make_features, split_name
from app.items import Item
from app.text import SINGLE_WORD, prepare

TEXTS = [
    "Congrats on the new role, well deserved!",
    "Hi, we help companies like yours. 15 minutes? calendly.com/x/15min",
    "Earn $500 per day from home, pay the fee and message me on Telegram",
    "ok 👍",
    "您好，我们公司提供免费试用 demo，加个微信聊聊?",
    "안녕하세요! 무료 데모 가능합니다",
]


# The words a reader sees: runs between spaces, each Chinese, Japanese or Korean character a word of its own.
READER_WORD = re.compile(f"[{SINGLE_WORD}]|[^\\s{SINGLE_WORD}]+")


@pytest.fixture(scope="module")
def fitted():
    items = [Item(text=t, earlier_text="earlier words here") for t in TEXTS] * 2
    return make_features(word_min_df=1, char_min_df=1, thread_min_df=1).fit(items), items


def test_the_pipeline_names_every_feature_by_block(fitted):
    pipe, items = fitted
    names = pipe.get_feature_names_out()
    assert {split_name(n)[0] for n in names} == set(BLOCKS)
    assert "signal__sales_language" in names and "context__owner_replied_after" in names and "word__👍" in names
    assert pipe.transform(items).shape == (len(items), len(names))


def test_a_block_can_be_left_out():
    pipe = make_features(word_min_df=1, char_min_df=1, blocks=("word", "signal")).fit([Item(text=t) for t in TEXTS])
    assert {split_name(n)[0] for n in pipe.get_feature_names_out()} == {"word", "signal"}
    with pytest.raises(ValueError, match="unknown feature blocks"):
        make_features(blocks=("words",))


@pytest.mark.parametrize("text", TEXTS)
def test_word_contributions_add_up_to_the_word_and_character_contributions(fitted, text):
    pipe, _ = fitted
    fast = FastFeatures(FittedParts.from_union(pipe[-1]))
    row = pipe.transform([Item(text=text)])[0].tocsr()
    weights = np.random.default_rng(0).normal(size=(3, row.shape[1]))
    feats = fast.features([prepare(Item(text=text))])
    names = pipe.get_feature_names_out()
    again = fast.features([prepare(Item(text=text))])  # its words now come from the character n-gram memory
    norm = prepare(Item(text=text)).norm
    starts = [m.start() for m in READER_WORD.finditer(norm)]
    assert feats.word_starts.tolist() == starts
    for k in range(3):
        per_word = fast.word_contributions(feats, weights, np.array([k]))
        expected = sum(
            v * weights[k, j] for j, v in zip(row.indices, row.data, strict=True) if split_name(names[j])[0] in ("word", "char")
        )
        assert len(per_word) == len(starts)  # one value per word a reader sees
        assert per_word.sum() == pytest.approx(expected, abs=1e-9)
        assert fast.word_contributions(again, weights, np.array([k])).tolist() == per_word.tolist()


@pytest.mark.parametrize(
    "estimator",
    [ItemPreparer(), SignalTransformer(), ContextTransformer(), TextVectorizer(norm=None, l2_with_unseen=True)],
    ids=lambda e: type(e).__name__,
)
@pytest.mark.parametrize(
    "check",
    [
        estimator_checks.check_no_attributes_set_in_init,
        estimator_checks.check_get_params_invariance,
        estimator_checks.check_set_params,
        estimator_checks.check_parameters_default_constructible,
    ],
    ids=lambda c: c.__name__,
)
def test_our_steps_pass_scikit_learns_estimator_checks_that_apply(estimator, check):
    check(type(estimator).__name__, clone(estimator))


def test_text_vectorizer_saves_its_vocabulary_packed_and_loads_the_same(tmp_path):
    import skops.io as sio

    texts = ["are we still on for friday?", "we help SaaS teams book demos", "kindly send the fee via telegram"]
    vec = TextVectorizer(analyzer="char_wb", ngram_range=(3, 5)).fit(texts)
    state = vec.__getstate__()
    assert "vocabulary_" not in state and isinstance(state["packed_vocabulary_"], str)
    sio.dump(vec, tmp_path / "vec.skops")
    loaded = sio.load(tmp_path / "vec.skops", trusted=["app.features.TextVectorizer"])
    assert loaded.vocabulary_ == vec.vocabulary_
    assert (loaded.transform(texts) != vec.transform(texts)).nnz == 0


KNOWN = ["thanks a lot !", "see you friday !", "book a demo today !", "thanks , see you !"]


@pytest.mark.parametrize("text", ["takk fyrir !", "misaotra betsaka !", "eskerrik asko !"])
def test_words_a_word_block_does_not_know_count_in_its_norm(text):
    plain = TextVectorizer(token_pattern=r"\S+", ngram_range=(1, 2)).fit(KNOWN)
    vec = TextVectorizer(token_pattern=r"\S+", ngram_range=(1, 2), norm=None, l2_with_unseen=True).fit(KNOWN)
    bang = vec.vocabulary_["!"]
    assert plain.transform([text])[0, bang] == pytest.approx(1.0)  # "!" alone carries the whole row
    unseen = vec.unseen_counts([text])[0]
    assert unseen == 2  # two words it does not know (their bigrams are not counted)
    expected = vec.idf_[bang] / np.sqrt(vec.idf_[bang] ** 2 + unseen * vec.idf_.max() ** 2)
    assert vec.transform([text])[0, bang] == pytest.approx(expected)
    assert expected < 0.5


def test_a_text_of_known_words_keeps_its_unit_norm_and_the_option_needs_norm_none():
    vec = TextVectorizer(token_pattern=r"\S+", ngram_range=(1, 2), norm=None, l2_with_unseen=True).fit(KNOWN)
    row = vec.transform(["see you friday !"])
    assert vec.unseen_counts(["see you friday !"])[0] == 0
    assert np.sqrt(row.multiply(row).sum()) == pytest.approx(1.0)
    assert vec.fit_transform(KNOWN).toarray() == pytest.approx(vec.transform(KNOWN).toarray())
    with pytest.raises(ValueError, match="norm=None"):
        TextVectorizer(l2_with_unseen=True).fit(KNOWN).transform(KNOWN)
