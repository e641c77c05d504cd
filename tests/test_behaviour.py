"""Behaviour of the shipped model: invariances and directional expectations."""

from __future__ import annotations

import itertools

import pytest

from app.features import Item

NAMES = [
    ("Gary", "Anderson"),
    ("Ngozi", "Okafor"),
    ("Priya", "Iyer"),
    ("Jonas", "Müller"),
    ("María", "García"),
    ("Wanjiru", "Kamau"),
]
NAMED_TEXTS = [
    "Hi {first}, great meeting you at the DevFest meetup last week. Let's keep in touch!",
    "Hi {first}, I was impressed with your profile. We help companies like yours grow revenue, open to a 15 minute call?",
    "Hello dear {first}, I am a widower looking for an honest friend, write me on WhatsApp.",
    "Congrats on the new role {first}!!\n\nCheers,\n{sender}",
    "{first}, just bumping this to the top of your inbox. Did you get a chance to look at our proposal?",
    "Dear {first} {last}, you have been shortlisted for a remote job. Pay the registration fee to start.",
    "Hey {first}! {sender} suggested I reach out, she said you know a lot about hiring in Nairobi.",
]


@pytest.mark.parametrize("template", NAMED_TEXTS)
def test_changing_a_persons_name_never_flips_the_verdict(shipped_model, template):
    verdicts = set()
    for (first, last), (sender, _) in itertools.product(NAMES, NAMES[::-1]):
        item = Item(text=template.format(first=first, last=last, sender=sender), recipient_name=f"{first} {last}")
        verdicts.add(shipped_model.score_item(item).verdict)
    assert len(verdicts) == 1


SCAM_TAIL = " Pay the $150 fee and message me on Telegram."
BASES = [
    "Thanks for connecting, looking forward to learning from your posts.",
    "We help logistics firms cut fuel costs. Would you be open to a chat?",
    "I am hiring a backend engineer for my team in Lagos and would love to talk.",
    "Congratulations on your work anniversary!",
]


@pytest.mark.parametrize("base", BASES)
def test_asking_for_a_fee_on_telegram_raises_the_spam_score(shipped_model, base):
    before = shipped_model.score_item(Item(text=base)).scores["spam"]
    after = shipped_model.score_item(Item(text=base + SCAM_TAIL)).scores["spam"]
    assert after > before


CALENDAR_PITCHES = [
    ("We help SaaS teams double their demo rate. Grab a slot here: {link}", "https://calendly.com/alex-growth/15min"),
    (
        "Loved your post on hiring. Our platform screens candidates in minutes, book a time: {link}",
        "https://meetings.hubspot.com/sam/intro",
    ),
    ("Quick idea for your marketing team, pick any time that suits you {link} thanks!", "calendly.com/mktg-pro/30min"),
]


@pytest.mark.parametrize(("template", "link"), CALENDAR_PITCHES)
def test_removing_a_calendar_link_lowers_the_pitch_score(shipped_model, template, link):
    with_link = shipped_model.score_item(Item(text=template.format(link=link))).scores["sales_pitch"]
    without = shipped_model.score_item(Item(text=template.format(link=""))).scores["sales_pitch"]
    assert without < with_link


def test_empty_invites_follow_the_profile(shipped_model):
    bot = Item(
        text="", kind="invite", sender_has_photo=False, sender_connections=3, mutual_connections=0, sender_account_age_days=2
    )
    colleague = Item(
        text="", kind="invite", sender_has_photo=True, sender_connections=900, mutual_connections=40, sender_account_age_days=3000
    )
    assert shipped_model.score_item(bot).verdict == "spam"
    assert shipped_model.score_item(colleague).verdict == "genuine"
