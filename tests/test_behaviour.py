"""Behaviour of the shipped model: clear cases, invariances and directional expectations.

The clear cases are short messages of the kinds FIELD_NOTES.md says real inboxes are full of,
written for this test (none is in the corpus). They guard the failure the field notes report:
genuine replies and recruiters called sales_pitch or spam.
"""

from __future__ import annotations

import itertools

import pytest

from app.items import Item

CLEAR_CASES = {
    "genuine": [
        "Thanks! See you Thursday",
        "ok sure, send me the JD",
        "Congrats on the new role!! 🎉",
        "Can you share the slides before the call?",
        "haha yes, that was a long day",
        "Hi Ana, I'm recruiting for a Senior Data Engineer role at Nordfin (remote, EU). Open to a chat this week?",
        "Thank you for accepting my request. I'm a final-year student and would love your advice on getting into UX.",
        "Sorry for the late reply, I was travelling. Monday works for me.",
        # finance words are no scheme: a banker's recruiter and an investor give WhatsApp numbers too
        "Hi Sam, I'm hiring an investment banking associate for a boutique in Dubai. Happy to share details, "
        "my WhatsApp is +971 50 123 4567",
    ],
    "sales_pitch": [
        "We help SaaS companies book 20+ qualified demos a month. Worth a quick 15-min call?",
        "Our agency builds Shopify stores from $999, delivered in 2 weeks. Interested?",
        "Join our free webinar on AI for HR leaders next Thursday, register here: https://events.example/ai-hr",
        "Just bumping this to the top of your inbox, did you get a chance to look at our proposal?",
    ],
    "spam": [
        "Earn $500 daily from home trading crypto, no experience needed. Message me on WhatsApp",
        "Congratulations! You have been selected for a remote data entry job. Pay the $50 registration fee to start",
        "Your LinkedIn account will be restricted in 24 hours. Verify your identity here: http://linkedin-verify.example/login",
        "hello dear, you have a beautiful smile, can we be friends? I am new here",
    ],
}
CASES = [(label, text) for label, texts in CLEAR_CASES.items() for text in texts]


@pytest.mark.parametrize(("label", "text"), CASES, ids=[t[:40] for _, t in CASES])
def test_clear_cases_get_their_verdict(shipped_model, label, text):
    verdict = shipped_model.verdicts([Item(text=text)], n_reasons=3)[0]
    assert verdict.verdict == label, (verdict.scores, [r.description for r in verdict.reasons])


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
    "Dear {first} {last}, you have been shortlisted for a remote job. Pay the registration fee to start.",
]


@pytest.mark.parametrize("template", NAMED_TEXTS)
def test_changing_a_persons_name_never_flips_the_verdict(shipped_model, template):
    items = [
        Item(text=template.format(first=first, last=last, sender=sender), recipient_name=f"{first} {last}", sender_name=sender)
        for (first, last), (sender, _) in itertools.product(NAMES, NAMES[::-1])
    ]
    assert len({v.verdict for v in shipped_model.verdicts(items, n_reasons=0)}) == 1


SCAM_TAIL = " Pay the $150 fee and message me on Telegram."
BASES = [
    "Thanks for connecting, looking forward to learning from your posts.",
    "We help logistics firms cut fuel costs. Would you be open to a chat?",
    "I am hiring a backend engineer for my team in Lagos and would love to talk.",
]


@pytest.mark.parametrize("base", BASES)
def test_asking_for_a_fee_on_telegram_raises_the_spam_score(shipped_model, base):
    before, after = shipped_model.predict_proba([Item(text=base), Item(text=base + SCAM_TAIL)])[:, 2]
    assert after > before


SHORT_REPLIES = ["sounds good, talk then", "yes please", "ok", "Thursday 3pm?"]


@pytest.mark.parametrize("text", SHORT_REPLIES)
def test_a_reply_inside_a_conversation_the_owner_keeps_up_is_more_genuine_than_from_a_stranger(shipped_model, text):
    inside = Item(text=text, is_connection=True, owner_messages_before=3, sender_messages_before=2, owner_replied_after=True)
    stranger = Item(text=text, is_connection=False, owner_messages_before=0, sender_messages_before=2, prior_unanswered=2)
    p_inside, p_stranger = shipped_model.predict_proba([inside, stranger])[:, 0]
    assert p_inside > p_stranger
    assert shipped_model.verdicts([inside], n_reasons=0)[0].verdict == "genuine"
