"""The signal registry: every named signal fires on its examples and stays quiet on its counter-examples."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.context import CONTEXT_FUNCTIONS, context_signal_values
from app.items import Item
from app.signals import PATTERNS, load_registry, registry, text_signal_values
from app.text import SINGLE_WORD, WORD_MARKS, prepare

REGISTRY = registry()
TEXT_SIGNALS = [s for s in REGISTRY.signals.values() if s.kind != "context"]


def _value(name: str, text: str) -> float:
    return text_signal_values(prepare(Item(text=text)))[name]


def test_every_signal_has_a_description_and_a_known_definition():
    for s in REGISTRY.signals.values():
        assert s.description and not s.description.endswith(".")
        if s.kind == "pattern":
            assert s.function in PATTERNS
        if s.kind == "context":
            assert s.function in CONTEXT_FUNCTIONS
    assert len(REGISTRY.languages) >= 8 and len(REGISTRY.phrases) > 1500


@pytest.mark.parametrize(("name", "text"), [(s.name, t) for s in TEXT_SIGNALS for t in s.fires], ids=lambda v: str(v)[:40])
def test_signal_fires_on_its_examples(name, text):
    assert _value(name, text) > 0


@pytest.mark.parametrize(("name", "text"), [(s.name, t) for s in TEXT_SIGNALS for t in s.quiet], ids=lambda v: str(v)[:40])
def test_signal_stays_quiet_on_its_counter_examples(name, text):
    assert _value(name, text) == 0


def test_every_text_signal_has_examples_both_ways():
    for s in TEXT_SIGNALS:
        if s.name != "long_text":
            assert s.fires, s.name
        assert s.quiet, s.name
    assert _value("long_text", "word " * 200) == 1.0


# The audit of FIELD_NOTES section 3: contact details are no evidence by themselves.
@pytest.mark.parametrize(
    "text",
    [
        "Hi, I'm hiring a QA lead for our Pune office. Reach me at priya@orbit.example or +91 98450 12345",
        "call me on 0803 555 1234 when you are free",
        "send me the details at tunde.a@gmail.com",
    ],
)
def test_an_email_or_phone_alone_fires_no_spam_signal(text):
    values = text_signal_values(prepare(Item(text=text)))
    spammy = ("chat_app_move", "chat_app_with_scheme", "fee_or_documents", "job_offer_with_catch", "romance_friendship")
    assert all(values[name] == 0 for name in spammy)


@pytest.mark.parametrize(
    ("text", "fires"),
    [
        ("There is no placement fee charged to nurses", False),
        ("We do not charge any registration fee", False),
        ("Sin costo de inscripción, no registration fee", False),
        ("Pay the placement fee of 5000 first", True),
        ("no worries, the registration fee is $50 payable today", True),  # the negation is in another clause
        ("No interview is needed. Pay the registration fee today", True),
    ],
)
def test_a_negation_just_before_a_fee_phrase_cancels_it(text, fires):
    assert (_value("fee_or_documents", text) > 0) is fires


def test_a_dear_sir_greeting_is_not_a_romance_opener():
    assert _value("romance_friendship", "Dear Sir, kindly find my CV attached for the internship.") == 0


CONTEXT_EXAMPLES = {
    "invite_note": (Item(text="Hi, loved your talk", kind="invite"), Item(text="Hi, loved your talk")),
    "owner_wrote_before": (Item(text="ok", owner_messages_before=2), Item(text="ok", owner_messages_before=0)),
    "owner_never_wrote": (Item(text="hello", owner_messages_before=0), Item(text="hello")),
    "owner_started": (Item(text="sure", owner_started=True), Item(text="sure", owner_started=False)),
    "owner_replied_after": (Item(text="hi", owner_replied_after=True), Item(text="hi", owner_replied_after=False)),
    "no_reply_after": (Item(text="hi", owner_replied_after=False), Item(text="hi")),
    "second_unanswered": (
        Item(text="any thoughts?", prior_unanswered=1, owner_messages_before=0),
        Item(text="any thoughts?", prior_unanswered=1, owner_messages_before=3),  # a friend's second message
    ),
    "third_unanswered": (
        Item(text="last try", prior_unanswered=2, owner_messages_before=0),
        Item(text="last try", prior_unanswered=1, owner_messages_before=0),
    ),
    "ongoing_thread": (
        Item(text="ok", owner_messages_before=2, sender_messages_before=3),
        Item(text="ok", owner_messages_before=1, sender_messages_before=3),
    ),
    "not_a_connection": (Item(text="hi", is_connection=False), Item(text="hi", is_connection=True)),
    "just_connected": (Item(text="thanks!", minutes_since_connected=30), Item(text="thanks!", minutes_since_connected=5000)),
    "long_connected": (Item(text="hey", minutes_since_connected=600_000), Item(text="hey", minutes_since_connected=60)),
    "greets_someone_else": (
        Item(text="Hi Marta, are we still on for dinner Friday?", recipient_name="Sofía Núñez"),
        Item(text="Hi Sofia, are we still on for dinner Friday?", recipient_name="Sofía Núñez"),
    ),
    "bare_turn_from_stranger": (
        Item(text="are you there dear?", is_connection=False, owner_messages_before=0),
        Item(text="Hello, how are you?", is_connection=False, owner_messages_before=2),
    ),
    "bare_turn_from_contact": (
        Item(text="Hi Priya, how are you?", is_connection=True, owner_messages_before=0),
        Item(text="Hi Priya, can you send the deck?", is_connection=True, owner_messages_before=0),
    ),
    "anonymous_sender": (Item(text="<p>Hi</p>", sender_name="LinkedIn Member"), Item(text="<p>Hi</p>", sender_name="Ana Ruiz")),
    "few_connections": (Item(text="hi", sender_connections=3), Item(text="hi", sender_connections=800)),
    "mutual_connections": (Item(text="hi", mutual_connections=12), Item(text="hi", mutual_connections=0)),
    "no_photo": (Item(text="hi", sender_has_photo=False), Item(text="hi", sender_has_photo=True)),
    "new_account": (Item(text="hi", sender_account_age_days=3), Item(text="hi", sender_account_age_days=900)),
}


@pytest.mark.parametrize("name", sorted(CONTEXT_EXAMPLES))
def test_context_signal_fires_when_the_fact_is_known_and_true(name):
    fires, quiet = CONTEXT_EXAMPLES[name]
    assert context_signal_values(fires)[name] == 1.0
    assert context_signal_values(quiet)[name] == 0.0


def test_every_context_signal_has_examples():
    assert set(CONTEXT_EXAMPLES) == {s.name for s in REGISTRY.signals.values() if s.kind == "context"}


def test_a_text_alone_has_no_context_signal():
    assert not any(context_signal_values(Item(text="Thanks for connecting!")).values())


def test_a_lexicon_file_naming_an_unknown_signal_is_refused(tmp_path):
    (tmp_path / "lexicons").mkdir()
    (tmp_path / "signals.toml").write_text('[[signal]]\nname = "x"\nkind = "lexicon"\ndescription = "x"\n', encoding="utf-8")
    (tmp_path / "lexicons" / "en.toml").write_text('[phrases]\ny = ["a"]\n', encoding="utf-8")
    with pytest.raises(ValueError, match="'y' is not a lexicon signal"):
        load_registry(tmp_path)


@pytest.mark.parametrize(
    "item",
    [
        Item(text="Hi Marta, are we still on for dinner Friday?"),  # the recipient is not known: nothing to compare
        Item(text="Hi team, are we still on for Friday?", recipient_name="Sofía Núñez"),
        Item(text="Hello Mr Núñez, thanks for the call", recipient_name="Sofia Nunez"),
    ],
)
def test_greeting_someone_else_needs_a_known_recipient_and_another_name(item):
    assert context_signal_values(item)["greets_someone_else"] == 0.0


@pytest.mark.parametrize(
    "text",
    [
        "pay $50 now",
        "500 USD",
        "Rs. 2000 only",
        "2 lakhs",
        "₹ 900",
        "call 98765",
        "RS 5",
        "Rſ 5",
        "5 uſd",
        "no money",
        "10 hours",
    ],
)
def test_the_money_pattern_with_its_lookahead_finds_what_the_plain_one_finds(text):
    from app.signals import _MONEY

    plain = re.compile(_MONEY.pattern.split(")", 1)[1].removeprefix("(?:").removesuffix(")"), re.IGNORECASE)
    assert _MONEY.findall(text) == plain.findall(text)


def test_spans_are_left_out_rather_than_shifted_when_lower_casing_changes_the_length():
    from app.signals import signal_spans

    p = prepare(Item(text="İİİİ earn money from home, pay the registration fee"))
    assert signal_spans(p, "easy_money_job") == []
    q = prepare(Item(text="earn money from home, pay the registration fee"))
    assert [q.raw[a:b] for a, b in signal_spans(q, "easy_money_job")] == ["earn money"]


def _phrases_by_reading_words(text: str) -> list[tuple[str, int, int]]:
    """The phrase scan's meaning: every run of 1 to MAX_PHRASE_WORDS words that is a lexicon phrase, by first word and length."""
    from app.signals import MAX_PHRASE_WORDS, words

    tokens = words(text)
    return [
        (name, i, i + n)
        for i in range(len(tokens))
        for n in range(1, min(MAX_PHRASE_WORDS, len(tokens) - i) + 1)
        for name in REGISTRY.phrases.get(" ".join(tokens[i : i + n]), ())
    ]


_LEXICON_WORDS = sorted({w for key in REGISTRY.phrases for w in key.split(" ")})


@settings(max_examples=80, deadline=None, derandomize=True)
@given(
    st.lists(
        st.lists(
            st.one_of(
                st.sampled_from(_LEXICON_WORDS).map(str.upper) | st.sampled_from(_LEXICON_WORDS),
                st.text(alphabet=st.characters(codec="utf-8"), max_size=6),
                st.text(alphabet="副業日赚兼职加微信スマホでカタｶﾀ안녕부업・ー々〆\u3099नौकरीা\u0301e\ufe0f❤", max_size=6),
            ),
            max_size=30,
        ).flatmap(lambda parts: st.sampled_from([" ", "'", "’ ", ", ", "\n", "-", "´"]).map(lambda sep: sep.join(parts))),
        min_size=1,
        max_size=5,
    )
)
def test_the_compiled_phrase_scan_finds_what_reading_the_words_finds(texts):
    from app.signals import phrase_hits

    for text in texts:
        assert phrase_hits(text) == _phrases_by_reading_words(text)
    doc_ptr, signal, first, last, _, _ = REGISTRY.trie.hits(texts)  # a chunk at once: each text's hits in its own range
    chunk = [(REGISTRY.trie.signals[s], a, b) for s, a, b in zip(signal.tolist(), first.tolist(), last.tolist(), strict=True)]
    expected = [_phrases_by_reading_words(t) for t in texts]
    assert doc_ptr.tolist() == [0, *itertools.accumulate(map(len, expected))]
    assert chunk == [hit for hits in expected for hit in hits]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("We’d love to BOOK A QUICK CALL", "meeting_request"),
        ("I'm impressed with your profile", "flattery_terms"),
        ("【副業】スマホだけで1日3万円！", "easy_money_job"),  # no spaces: every character is a word
        ("부업으로 월 300 가능", "easy_money_job"),  # a Korean word with its particle attached
        ("घर बैठे कमाई करें", "easy_money_job"),  # vowel signs are part of the word
        ("تواصل معي على الواتس", "chat_app_move"),
        ("Пишите в телеграм", "chat_app_move"),
    ],
)
def test_phrases_match_across_case_apostrophes_and_scripts(text, expected):
    from app.signals import phrase_hits

    assert expected in {name for name, _, _ in phrase_hits(text)}


@settings(max_examples=80, deadline=None, derandomize=True)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=60))
def test_ascii_text_is_cut_into_the_same_words_by_the_fast_pattern(text):
    from app.signals import _ASCII_TOKEN, _TOKEN

    assert [m.span() for m in _ASCII_TOKEN.finditer(text)] == [m.span() for m in _TOKEN.finditer(text)]


# Common words that a lexicon once held bare: their ordinary use must not fire the signal (a review's finds).
@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("عزيزتي منى، شكرا على التقرير. رقمي على واتساب إذا احتجتِ شيئا", "romance_friendship"),  # "dear Mona"
        ("شكرا، هل يمكنني استخدام الرسوم البيانية في العرض؟", "recruiting_terms"),  # "use", not "hiring"
        ("نحن صندوق استثمار جريء في الرياض", "advance_fee_story"),  # a venture fund
        ("Дорогая Анна, рада была познакомиться на конференции!", "romance_friendship"),  # "dear Anna"
        ("Это дорогая позиция, но интересная", "romance_friendship"),  # "an expensive position"
        ("非同期処理の件、ご確認いただけますか？", "pitch_followup"),  # a polite request between colleagues
        ("이 일 당장 봐줄 수 있어?", "easy_money_job"),  # "can you look at this right now?"
    ],
)
def test_ordinary_words_of_other_scripts_fire_no_signal(text, name):
    assert _value(name, text) == 0


# Where each lexicon word lies in the text with its apostrophes: dropping an apostrophe inside a
# word ("I'm") joins its two sides, so the apostrophe belongs to the word.
_SPAN_WORD = re.compile(
    f"(?=\\w)[{SINGLE_WORD}]|[^\\W{SINGLE_WORD}]"
    f"(?:[^\\W{SINGLE_WORD}]|[{WORD_MARKS}]|['’`´]+(?=[^\\W{SINGLE_WORD}]|[{WORD_MARKS}]))*"
)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    st.lists(st.sampled_from(_LEXICON_WORDS) | st.text(alphabet="ab z'’`´中文\u0301\u0e31कि ", max_size=8), max_size=12).map(
        " ".join
    )
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=30)
)
def test_phrase_spans_cover_the_words_of_the_phrase_in_the_text(text):
    from app.signals import LexiconHits, drop_apostrophes, words

    low = text.lower()
    found = LexiconHits.find([text])
    spans = list(zip(found.start.tolist(), found.end.tolist(), strict=True))
    if len(low) != len(text):
        return  # no spans are shown for such texts
    positions = [m.span() for m in _SPAN_WORD.finditer(low)]
    assert [drop_apostrophes(low[a:b]) for a, b in positions] == words(text)
    words_of_hits = zip(found.first.tolist(), found.last.tolist(), strict=True)
    assert spans == [(positions[i][0], positions[j - 1][1]) for i, j in words_of_hits]


def test_a_signal_in_a_text_with_apostrophes_gets_its_span():
    from app.signals import signal_spans

    p = prepare(Item(text="We’d love to book a quick call, I'm free on Friday"))
    assert [p.raw[a:b] for a, b in signal_spans(p, "meeting_request")] == ["quick call"]
