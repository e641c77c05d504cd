"""Text preparation: markup decoded, links marked, contact details dropped, names masked, offsets exact, time linear."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.items import Item
from app.signals import text_signal_values
from app.text import NAME_TOKEN, URL_TOKEN, _greeting_rules, _names_pattern, name_matches, only_greets, only_replies, prepare


def test_markup_and_entities_are_decoded_and_links_keep_their_domain():
    p = prepare(
        Item(
            text='<p class="spinmail-quill-editor__spin-break">Hi&nbsp;there &amp; <a href="https://go.example.com/x">join</a></p>'
        )
    )
    assert p.has_markup and p.domains == ("go.example.com",)
    assert "hi there & " in p.norm and f"{URL_TOKEN} go.example.com" in p.norm and "<" not in p.norm


def test_emails_and_phones_are_dropped_but_counted():
    p = prepare(Item(text="Mail ravi.k@orbit.example or call +91 98400 12345 today"))
    assert (p.n_emails, p.n_phones) == (1, 1)
    assert "orbit" not in p.norm and "98400" not in p.norm and "call" in p.norm


@pytest.mark.parametrize(
    ("text", "phones"),
    [
        ("請致電0912345678查詢", 1),  # Chinese writes a number against its words
        ("直通032-1234-5678로 연락주세요", 1),  # a Korean particle on the number
        ("โทร0812345678ค่ะ", 1),
        ("お電話は090-1234-5678まで", 1),
        ("order ab123456789012 shipped", 0),  # Latin letters on the digits: a code, not a phone
        ("tracking 123456789012x", 0),
    ],
)
def test_a_phone_number_may_touch_words_only_in_scripts_written_without_spaces(text, phones):
    assert prepare(Item(text=text)).n_phones == phones


def test_names_of_sender_and_recipient_and_greetings_are_masked():
    item = Item(text="Hi Wanjiru, Kamau here.\n\nRegards,\nOtieno", sender_name="Kamau Otieno", recipient_name="Wanjiru Njeri")
    assert prepare(item).norm.count(NAME_TOKEN) == 3
    assert prepare(Item(text="Hello Gabriela, welcome!")).norm.startswith(f"hello {NAME_TOKEN}")


@pytest.mark.parametrize(
    "text",
    ["Hi Ana, see https://bit.ly/x1 &amp; <b>now</b>", "𝐁𝐢𝐭𝐜𝐨𝐢𝐧 profits İstanbul ß", "call +1 (555) 010-9999 or a@b.co"],
)
def test_offsets_map_every_normalised_character_back_into_the_received_text(text):
    p = prepare(Item(text=text, sender_name="Ana Lee"))
    assert len(p.starts) == len(p.norm) == len(p.ends)
    assert all(0 <= a < b <= len(text) for a, b in zip(p.starts, p.ends, strict=True))
    assert [p.start_of(i) for i in range(len(p.norm))] == list(p.starts)
    assert [p.end_of(i) for i in range(len(p.norm))] == list(p.ends)


@pytest.mark.parametrize(
    ("text", "greets_only"),
    [
        ("hi", True),
        ("Hello sir 👋", True),
        ("Привет!", True),
        ("Good morning 🌞", True),
        ("你好", True),
        ("hello dear", False),
        ("hi, how are you?", True),
        ("hi how are you", True),
        ("Hi Priya, how are you?", True),
        ("Hello sir, how have you been?", True),
        ("Hello dear, how are you doing today?", False),
        ("Hi Beautiful, how are you?", False),
        ("Hi Honey, how are you?", False),
        ("Good morning Sunshine", False),
        ("Hi Priya, can you send the deck?", False),
        ("How Much is it?", False),
        ("Ji sir", False),
        ("bhai", False),
        ("good", False),
        ("Good morning all", True),
        ("ok", False),
        ("", False),
        ("hi " * 30, False),
        ("I'd like to add you to my professional network on LinkedIn.", True),  # LinkedIn's default invitation
        ("I'd like to add you to my professional network on LinkedIn.\n\n- Sam Lee", True),
        ("Hi Priya, I'd like to join your LinkedIn network.", True),
        ("Me gustaría añadirte a mi red profesional en LinkedIn.", True),
        ("I'd like to add you to my professional network on LinkedIn. We help SaaS teams grow", False),
    ],
)
def test_a_bare_greeting_is_told_from_a_text_that_says_something(text, greets_only):
    assert only_greets(text) is greets_only


def test_greeting_words_are_written_casefolded_as_texts_are_read():
    """only_greets compares casefolded words: a word kept in another case (a Greek final sigma) could never match."""
    rules = _greeting_rules()
    for key in ("greetings", "asking_after", "with_greeting", "not_names"):
        assert [w for w in rules[key] if w != w.casefold()] == [], key


@pytest.mark.parametrize(
    ("text", "replies_only"),
    [
        ("ok", True),
        ("ok dear", True),
        ("ok bro", True),
        ("Noted, thanks sir 🙏", True),
        ("Are you there?", True),
        ("still there?", True),
        ("No worries!", True),
        ("Listo, gracias ✅", True),
        ("hello dear", False),  # a greeting with an endearment opens a conversation: no reply
        ("Sir??", False),  # a form of address alone acknowledges nothing
        ("are you", False),
        ("ok, send me your bank details", False),
        ("ok sir. minimum is only $1000", False),
        ("ok " * 20, False),
        ("", False),
    ],
)
def test_a_bare_reply_is_told_from_a_reply_that_says_something(text, replies_only):
    assert only_replies(text) is replies_only


def test_fancy_letters_fold_to_plain_ones():
    assert "bitcoin" in prepare(Item(text="𝐁𝐢𝐭𝐜𝐨𝐢𝐧 profits")).norm


# Regular-expression backtracking (issue 11): inputs that once took tens of seconds.
ADVERSARIAL = [
    "{{" + " " * 19_998,
    "@ " + "a." * 9_999,
    "{" + " " * 19_999,
    "a-" * 10_000,
    "_." * 10_000,
    "a+" * 10_000,
    "1 " * 10_000,
    "<" + "a" * 19_999,
    "<a " + "x" * 19_997,
    "&" * 20_000,
    "hi " + "A" * 19_997,
    "www." + "a." * 9_998,
]


def _seconds(text: str) -> float:
    start = time.perf_counter()
    item = Item(text=text)
    text_signal_values(prepare(item, with_offsets=True))
    return time.perf_counter() - start


def _ordinary(n: int) -> str:
    return ("Hi Ana, we met at the meetup, here is my deck https://x.example/d and my mail a@b.example. " * 300)[:n]


@pytest.mark.parametrize("text", ADVERSARIAL, ids=lambda t: repr(t[:6]))
def test_adversarial_texts_cost_about_what_ordinary_text_of_their_length_costs(text):
    baseline = min(_seconds(_ordinary(len(text))) for _ in range(3))
    took = min(_seconds(text) for _ in range(2))
    assert took < 20 * baseline + 0.05  # a ratio to ordinary text of the same length, never a wall-clock limit


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from(list("{}<>@.-_+&#%[]a1 \n:/w")), min_size=5_000, max_size=20_000))
def test_fuzzed_texts_over_adversarial_alphabets_stay_linear(text):
    baseline = min(_seconds(_ordinary(len(text))) for _ in range(2))
    assert _seconds(text) < 20 * baseline + 0.05


CONTACT_TEXTS = [
    "mail me at ana.lee@example.com or +44 20 7946 0958",
    "see http://localhost/x and WWW.Example.ORG/path, or bit.ly/abc.",
    "Thanks. See you at 5.30 tomorrow",
    "call 98765 43210 pls",
    "my number is 123 456 78",
    "no contact here",
    "a@b",
    "visit example.com.",
]


@pytest.mark.parametrize("text", CONTACT_TEXTS)
def test_the_contact_scan_uses_only_parts_that_can_match_and_finds_the_same(text):
    from app.text import _CONTACT_PARTS, _contact_pattern

    full = re.compile("|".join(_CONTACT_PARTS), re.IGNORECASE)
    narrowed = _contact_pattern(text)
    found = [(m.lastgroup, m.span()) for m in narrowed.finditer(text)] if narrowed else []
    assert found == [(m.lastgroup, m.span()) for m in full.finditer(text)]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.text(alphabet="ab1.@:/ wWhtpcom-+", max_size=40))
def test_the_narrowed_contact_scan_finds_what_the_full_one_finds(text):
    from app.text import _CONTACT_PARTS, _contact_pattern

    full = re.compile("|".join(_CONTACT_PARTS), re.IGNORECASE)
    narrowed = _contact_pattern(text)
    found = [(m.lastgroup, m.span()) for m in narrowed.finditer(text)] if narrowed else []
    assert found == [(m.lastgroup, m.span()) for m in full.finditer(text)]


_NAME_TEXT = st.text(alphabet="abAB _-'.,\n1éİK", max_size=40)


@given(_NAME_TEXT, st.lists(st.text(alphabet="abAB_-'.éK", min_size=2, max_size=4), min_size=1, max_size=3, unique=True))
def test_name_matches_are_the_pattern_s_matches(text, names):
    names = tuple(sorted(names, key=len, reverse=True))
    assert name_matches(text, names) == [(m.start(), m.end()) for m in _names_pattern(names).finditer(text)]
