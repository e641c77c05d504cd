"""The feature path: normalisation, spans, signals and item parsing."""

from __future__ import annotations

import pytest

from app.features import SIGNAL_NAMES, SIGNALS, Item, ItemFeaturizer, ngram_spans, prepare, signal_values


def signals_of(item: Item) -> dict[str, float]:
    return dict(zip(SIGNAL_NAMES, signal_values(prepare(item)), strict=True))


@pytest.mark.parametrize(
    ("text", "signal"),
    [
        ("Check this out https://bit.ly/3abc", "shortened_link"),
        ("Let's continue on WhatsApp +234 803 123 4567", "offplatform_contact"),
        ("message me on telegram t.me/richguy", "offplatform_contact"),
        ("I earn $5,000 weekly trading b1tc0in", "money_crypto_terms"),
        ("Pay the registration fee to start", "fee_payment_request"),
        ("Do you have 15 minutes this week? calendly.com/x/intro", "meeting_request"),
        ("Please subscribe to my channel and leave a review", "self_promotion_ask"),
        ("Hi %FIRSTNAME%, quick one about [insert company name]", "template_marker"),
        ("Hi Gary A., I was impressed with your profile", "salutation_with_initial"),
        ("I was impressed with your profile and believe we have a lot in common", "generic_flattery"),
        ("Just bumping this to the top of your inbox", "followup_language"),
        ("Verify your account and send your password", "credential_request"),
        ("Congratulations on the new role!", "pleasantry"),
        ("We met at the conference in Lagos", "shared_context"),
    ],
)
def test_signal_fires_on_its_evidence(text, signal):
    assert signals_of(Item(text=text))[signal] > 0


def test_plain_note_fires_no_scam_signals():
    values = signals_of(Item(text="Great to see you yesterday, say hi to the team"))
    for name in ("fee_payment_request", "offplatform_contact", "credential_request", "template_marker", "shortened_link"):
        assert values[name] == 0


def test_unknown_metadata_is_not_zero_evidence():
    unknown = signals_of(Item(text="", kind="invite"))
    assert unknown["no_photo"] == unknown["few_connections"] == unknown["no_mutual_connections"] == 0
    fake = signals_of(
        Item(
            text="", kind="invite", sender_has_photo=False, sender_connections=3, mutual_connections=0, sender_account_age_days=2
        )
    )
    assert fake["no_photo"] == fake["few_connections"] == fake["no_mutual_connections"] == fake["new_account"] == 1
    assert fake["empty_note"] == 1


def test_pitch_within_a_day_needs_both_timing_and_pitch():
    pitch = "Thanks for connecting! We help agencies get more leads, open to a quick call?"
    assert signals_of(Item(text=pitch, minutes_since_connected=5))["pitch_within_day_of_connecting"] == 1
    assert signals_of(Item(text=pitch, minutes_since_connected=60 * 24 * 30))["pitch_within_day_of_connecting"] == 0
    assert signals_of(Item(text=pitch))["pitch_within_day_of_connecting"] == 0


def test_ngram_spans_point_into_the_received_text():
    text = "Hi Gary, I was IMPRESSED with your profile &amp; more: https://calendly.com/x/15"
    p = prepare(Item(text=text), with_offsets=True)
    assert [text[a:b] for a, b in ngram_spans(p, "word:impressed with")] == ["IMPRESSED with"]
    assert [text[a:b] for a, b in ngram_spans(p, "word:xurl calendly")] == ["https://calendly.com/x/15"]
    assert [text[a:b] for a, b in ngram_spans(p, "word:xname")] == ["Gary"]


def test_html_is_read_as_text_and_merge_tokens_survive():
    p = prepare(
        Item(
            text='<p class="spinmail-quill-editor__spin-break">Hi %FIRSTNAME%,</p><br>We&rsquo;re <a href="https://acme.io/x">here</a>'
        )
    )
    assert "<p" not in p.raw and "’" in p.raw and "%FIRSTNAME%" in p.raw
    assert p.domains == ("acme.io",)


def test_names_are_masked_so_they_carry_no_evidence():
    a = prepare(Item(text="Hi Priya, congrats on the launch!\nBest,\nTunde", sender_name="Tunde Okafor"))
    b = prepare(Item(text="Hi Lena, congrats on the launch!\nBest,\nMarco", sender_name="Marco Rossi"))
    assert a.norm == b.norm


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"text": "hi", "kind": "email"}, "kind"),
        ({"text": "hi", "sender_connections": "lots"}, "sender_connections"),
        ({"text": "hi", "sender_has_photo": "maybe"}, "sender_has_photo"),
        ({"text": "hi", "mutual_connections": -1}, "mutual_connections"),
        ({"text": "hi", "sender_connections": "inf"}, "sender_connections"),
        ({"text": "hi", "sender_account_age_days": 1e400}, "sender_account_age_days"),
        ({"text": "hi", "prior_unanswered": "1e20"}, "at most"),
    ],
)
def test_bad_fields_are_named(row, message):
    with pytest.raises(ValueError, match=message):
        Item.from_mapping(row)


def test_missing_values_mean_unknown():
    item = Item.from_mapping({"text": float("nan"), "sender_connections": "", "sender_has_photo": None, "kind": "invite"})
    assert item.text == "" and item.sender_connections is None and item.sender_has_photo is None


def test_featurizer_rows_match_the_batch_matrix():
    items = [Item(text=t) for t in ("congrats on the new role", "we help you grow, 15 minutes?", "earn $500 per day from home")]
    featurizer = ItemFeaturizer(word_min_df=1, char_min_df=1).fit(items)
    matrix = featurizer.transform(items).toarray()
    for k, item in enumerate(items):
        idx, vals = featurizer.row(prepare(item))
        dense = [0.0] * featurizer.n_features_out_
        for j, v in zip(idx, vals, strict=True):
            dense[j] = v
        assert matrix[k].tolist() == pytest.approx(dense)
    assert len(featurizer.get_feature_names_out()) == featurizer.n_features_out_ == matrix.shape[1]
    assert len(SIGNALS) == len(set(SIGNAL_NAMES))
