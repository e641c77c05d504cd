"""The one code path that turns an item (text plus optional metadata) into features.

Training, the service, batch scoring and retraining all call `ItemFeaturizer`.
Three blocks, concatenated into one sparse row:

- word 1-2 gram TF-IDF over the normalised text,
- character 3-5 gram TF-IDF inside word boundaries (so "b1tc0in" or another
  language still leaves evidence),
- named signals, each with a one-line description (`SIGNALS`).

Normalisation keeps a map back to the original text, so every n-gram can be shown
as the spans of the received text that produced it.
"""

from __future__ import annotations

import html
import itertools
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from itertools import repeat
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin

KINDS = ("invite", "message")
# Bump when a change here changes what a fitted featurizer computes: saved models record it
# and loading refuses a model whose features were computed differently.
FEATURES_VERSION = 2
NAME_TOKEN = "xname"


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


MAX_COUNT = 1_000_000_000  # the largest count or age a field may hold (the API's limit too)


def _as_int(value: Any, field_name: str) -> int | None:
    if _missing(value):
        return None
    if isinstance(value, bool):
        raise ValueError(f"{field_name}: expected a whole number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{field_name}: expected a whole number, got {value!r}") from None
    if not math.isfinite(number) or number < 0 or number != int(number):
        raise ValueError(f"{field_name}: expected a non-negative whole number, got {value!r}")
    if number > MAX_COUNT:
        raise ValueError(f"{field_name}: expected at most {MAX_COUNT:,}, got {value!r}")
    return int(number)


_TRUE = {"true", "yes", "y", "1", "t"}
_FALSE = {"false", "no", "n", "0", "f"}


def _as_bool(value: Any, field_name: str) -> bool | None:
    if _missing(value):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{field_name}: expected true or false, got {value!r}")


def _as_str(value: Any) -> str | None:
    return None if _missing(value) else str(value)


@dataclass(frozen=True)
class Item:
    """One received invite or message. Every field but `text` may be unknown (None)."""

    text: str
    kind: str = "message"
    sender_name: str | None = None
    sender_headline: str | None = None
    sender_connections: int | None = None
    mutual_connections: int | None = None
    sender_has_photo: bool | None = None
    sender_account_age_days: int | None = None
    recipient_name: str | None = None
    minutes_since_connected: int | None = None
    prior_unanswered: int | None = None

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> Item:
        """Build an item from a dict-like row (CSV, JSON, pandas); NaN and '' mean unknown.

        Raises ValueError naming the field when a value cannot be read.
        """
        text = row.get("text")
        text = "" if _missing(text) else str(text)
        kind = _as_str(row.get("kind")) or "message"
        kind = kind.strip().lower()
        if kind not in KINDS:
            raise ValueError(f"kind: expected one of {list(KINDS)}, got {kind!r}")
        return cls(
            text=text,
            kind=kind,
            sender_name=_as_str(row.get("sender_name")),
            sender_headline=_as_str(row.get("sender_headline")),
            sender_connections=_as_int(row.get("sender_connections"), "sender_connections"),
            mutual_connections=_as_int(row.get("mutual_connections"), "mutual_connections"),
            sender_has_photo=_as_bool(row.get("sender_has_photo"), "sender_has_photo"),
            sender_account_age_days=_as_int(row.get("sender_account_age_days"), "sender_account_age_days"),
            recipient_name=_as_str(row.get("recipient_name")),
            minutes_since_connected=_as_int(row.get("minutes_since_connected"), "minutes_since_connected"),
            prior_unanswered=_as_int(row.get("prior_unanswered"), "prior_unanswered"),
        )


ITEM_FIELDS = tuple(f.name for f in fields(Item))

# --------------------------------------------------------------------------------------
# Normalisation with an offset map back to the received text
# --------------------------------------------------------------------------------------

_URL = r"(?:https?://|www\.)[^\s<>\"')\]]+|\b(?:[a-z0-9-]+\.)+(?:com|net|org|io|co|ly|me|in|ng|ke|info|biz|xyz|app|link|gl|gd|cc|to|de|fr|es|it|br|uk|us|ai)(?:/[^\s<>\"')\]]*)?"
_STATIC = re.compile(
    "|".join(
        [
            r"(?P<tag><\s*/?\s*[a-zA-Z][^<>]{0,500}>)",
            r"(?P<entity>&(?:#\d{1,6}|#x[0-9a-fA-F]{1,6}|[a-zA-Z]{2,10});)",
            r"(?P<email>\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b)",
            rf"(?P<url>{_URL})",
            r"(?P<phone>(?<![\w/])\+?\d[\d\s().-]{7,}\d(?!\w))",
        ]
    ),
    re.IGNORECASE,
)
# Cheap pre-check: most notes hold nothing _STATIC would replace, and skipping it is faster.
_STATIC_TRIGGER = re.compile(
    r"[<&@]|://|www\.|\d[\d\s().-]{7,}\d|\.(?:com|net|org|io|co|ly|me|in|ng|ke|info|biz|xyz|app|link|gl|gd|cc|to|de|fr|es|"
    r"it|br|uk|us|ai)\b",
    re.IGNORECASE,
)
_HREF = re.compile(r"href\s*=\s*[\"']?([^\"'\s>]+)", re.IGNORECASE)
_BLOCK_TAG = re.compile(r"<\s*/?\s*(?:br|p|div|li|tr|h\d)\b", re.IGNORECASE)
_GREETING_NAME = re.compile(
    r"^\W{0,3}(?:hi|hello|hey|dear|hii+|hola|bonjour|salut|hallo|servus|moin|ciao|ol[aá]|oi|"
    r"good\s+(?:morning|afternoon|evening|day)|greetings|respected|namaste)\s*,?\s+"
    r"(?:(?:mr|mrs|ms|miss|dr|sir|madam|prof)\.?\s+)?"
    r"(?P<name>[A-ZÀ-Ý][\w'’-]+)",
    re.IGNORECASE,
)
_SIGNOFF_NAME = re.compile(
    r"(?:regards|thanks|thank you|best|cheers|sincerely|warmly|saludos|cordialement|gr[üu]ße|"
    r"abra[çc]os|atenciosamente|cordiali saluti|un saluto)[ ,!.]*\n+\s*"
    r"(?P<name>[A-ZÀ-Ý][\w'’-]+(?:[ \t]+[A-ZÀ-Ý][\w'’-]+)?)\s*$",
    re.IGNORECASE,
)
_NAME_STOPWORDS = {
    "team",
    "there",
    "all",
    "everyone",
    "sir",
    "madam",
    "friend",
    "friends",
    "dear",
    "and",
    "the",
    "linkedin",
    "hope",
    "thanks",
    "just",
    "i",
    "we",
    "my",
    "good",
    "how",
    "is",
    "are",
}


def _domain(url: str) -> str:
    url = re.sub(r"^(?:https?://)?(?:www\.)?", "", url.lower())
    return re.split(r"[/?#:]", url, maxsplit=1)[0]


def _known_names(item: Item) -> list[str]:
    names = []
    for full in (item.sender_name, item.recipient_name):
        if full:
            names += [p for p in re.split(r"[\s,]+", full.strip()) if len(p.strip(".")) >= 2]
    return sorted({n.strip(".") for n in names if n.strip(".").lower() not in _NAME_STOPWORDS}, key=len, reverse=True)


@dataclass(frozen=True)
class Prepared:
    """An item's text as the model reads it, plus what the signals need."""

    item: Item
    raw: str  # received text with entities decoded and tags turned into spaces/newlines
    norm: str  # lower-cased, links/e-mails/phones/names replaced by marker words
    starts: tuple[int, ...] | None  # norm index -> start of its source in the received text
    ends: tuple[int, ...] | None  # norm index -> end of its source in the received text
    domains: tuple[str, ...]
    n_emails: int
    n_phones: int
    masked_names: int


def _name_spans(text: str, item: Item) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    names = _known_names(item)
    if names:
        pattern = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(n) for n in names) + r")(?!\w)", re.IGNORECASE)
        spans += [(m.start(), m.end()) for m in pattern.finditer(text)]
    tail = max(len(text) - 120, 0)  # a sign-off sits at the very end: search only there
    for regex, base in ((_GREETING_NAME, 0), (_SIGNOFF_NAME, tail)):
        m = regex.search(text, base)
        if m and m.group("name").lower() not in _NAME_STOPWORDS and m.group("name")[0].isupper():
            spans.append((m.start("name"), m.end("name")))
    return spans


def _replacements(text: str) -> tuple[list[tuple[int, int, str, str]], list[str], int, int]:
    """Spans of tags, entities, e-mails, links and phones, with their model and raw text."""
    replaced: list[tuple[int, int, str, str]] = []
    domains: list[str] = []
    n_emails = n_phones = 0
    if not _STATIC_TRIGGER.search(text):
        return replaced, domains, n_emails, n_phones
    for m in _STATIC.finditer(text):
        kind, s = m.lastgroup, m.group(0)
        if kind == "tag":
            href = _HREF.search(s)
            if href:
                domains.append(_domain(href.group(1)))
                replaced.append((m.start(), m.end(), f" xurl {domains[-1]} ", " "))
            else:
                sep = "\n" if _BLOCK_TAG.match(s) else " "
                replaced.append((m.start(), m.end(), sep, sep))
        elif kind == "entity":
            decoded = html.unescape(s).replace("\xa0", " ")
            replaced.append((m.start(), m.end(), decoded.lower(), decoded))
        elif kind == "email":
            n_emails += 1
            replaced.append((m.start(), m.end(), f"xemail {s.split('@', 1)[1].lower()}", s))
        elif kind == "url":
            domains.append(_domain(s))
            replaced.append((m.start(), m.end(), f"xurl {domains[-1]}", s))
        elif kind == "phone" and sum(ch.isdigit() for ch in s) >= 9:
            n_phones += 1
            replaced.append((m.start(), m.end(), "xphone", s))
    return replaced, domains, n_emails, n_phones


def prepare(item: Item, with_offsets: bool = False) -> Prepared:
    """Normalise an item's text; with offsets, also map each char back to the received text."""
    text = item.text
    replaced, domains, n_emails, n_phones = _replacements(text)
    taken = [(a, b) for a, b, _, _ in replaced]
    n_masked = 0
    for a, b in _name_spans(text, item):
        if not any(a < tb and ta < b for ta, tb in taken):
            replaced.append((a, b, NAME_TOKEN, text[a:b]))
            taken.append((a, b))
            n_masked += 1
    replaced.sort()
    pos = 0
    norm_parts: list[str] = []
    raw_parts: list[str] = []
    sources: list[tuple[int, int, bool]] = []  # (orig_start, orig_end, is_replacement) per norm part
    for a, b, norm_s, raw_s in replaced:
        if a < pos:
            continue
        norm_parts += [text[pos:a].lower(), norm_s]
        raw_parts += [text[pos:a], raw_s]
        sources += [(pos, a, False), (a, b, True)]
        pos = b
    norm_parts.append(text[pos:].lower())
    raw_parts.append(text[pos:])
    sources.append((pos, len(text), False))
    starts: tuple[int, ...] | None = None
    ends: tuple[int, ...] | None = None
    if with_offsets:
        st: list[int] = []
        en: list[int] = []
        for (a, b, is_repl), normed in zip(sources, norm_parts, strict=True):
            if is_repl:
                st += [a] * len(normed)
                en += [b] * len(normed)
            elif len(normed) == b - a:
                st += range(a, b)
                en += range(a + 1, b + 1)
            else:  # lower() changed the length (rare Unicode): map char by char
                for i, ch in enumerate(text[a:b]):
                    k = len(ch.lower())
                    st += [a + i] * k
                    en += [a + i + 1] * k
        starts, ends = tuple(st), tuple(en)
    return Prepared(item, "".join(raw_parts), "".join(norm_parts), starts, ends, tuple(domains), n_emails, n_phones, n_masked)


# --------------------------------------------------------------------------------------
# N-gram analysers (shared by fit, transform and span lookup)
# --------------------------------------------------------------------------------------

_WORD = re.compile(r"(?u)\b\w\w+\b")
WORD_NGRAMS = (1, 2)
CHAR_NGRAMS = (3, 5)


def word_ngrams(norm: str) -> list[str]:
    tokens = _WORD.findall(norm)
    grams = list(tokens)
    grams += [f"{a} {b}" for a, b in itertools.pairwise(tokens)]
    return grams


def word_char_ngrams(word: str) -> list[str]:
    """Character n-grams of one word padded with a space on each side (" word ")."""
    lo, hi = CHAR_NGRAMS
    w = f" {word} "
    n_w = len(w)
    grams: list[str] = []
    for n in range(lo, min(hi, n_w) + 1):
        grams += [w[i : i + n] for i in range(n_w - n + 1)]
    return grams


def char_ngrams(norm: str) -> list[str]:
    """Character n-grams inside word boundaries: a leading or trailing space marks a word edge."""
    grams: list[str] = []
    for word in norm.split():
        grams += word_char_ngrams(word)
    return grams


def ngram_spans(prepared: Prepared, feature: str, limit: int = 5) -> list[tuple[int, int]]:
    """Spans (start, end) of the received text that produced an n-gram feature."""
    if prepared.starts is None or prepared.ends is None:
        raise ValueError("prepare(item, with_offsets=True) is needed for spans")
    block, _, gram = feature.partition(":")
    norm = prepared.norm
    if block == "word":
        words = gram.split(" ")
        pattern = r"(?<!\w)" + r"\W+".join(re.escape(w) for w in words) + r"(?!\w)"
    elif block == "char":
        core = gram.strip(" ")
        if not core:
            return []
        inner = r"\s+".join(re.escape(part) for part in core.split(" "))
        pattern = ("(?<!\\S)" if gram.startswith(" ") else "") + inner + ("(?!\\S)" if gram.endswith(" ") else "")
    else:
        return []
    spans: list[tuple[int, int]] = []
    for m in re.finditer(pattern, norm):
        if m.end() <= m.start():
            continue
        span = (prepared.starts[m.start()], prepared.ends[m.end() - 1])
        if span not in spans:
            spans.append(span)
        if len(spans) >= limit:
            break
    return spans


# --------------------------------------------------------------------------------------
# Named signals
# --------------------------------------------------------------------------------------
# Most signals are phrase lexicons matched on word tokens (one dict lookup per token
# n-gram, far faster than a regex per signal); a few need a regex on the text.

_TOKEN = re.compile(r"\w+")
_MAX_PHRASE = 4

LEXICONS: dict[str, tuple[str, ...]] = {
    "offplatform_contact": (
        "whatsapp",
        "whats app",
        "watsapp",
        "wechat",
        "telegram",
        "telegramm",
        "signal app",
        "hangouts",
        "hangout",
        "viber",
        "kik",
        "skype",
        "my number",
        "my cell",
        "my phone",
        "my email",
        "my e mail",
        "my personal email",
        "text me",
        "call me on",
        "dm me on",
        "contact me on",
        "contact me via",
        "contact me at",
        "reach me on",
        "reach me at",
        "gmail",
        "yahoo",
        "mi número",
        "mi numero",
        "meu número",
        "meu numero",
        "mon numéro",
        "meine nummer",
        "il mio numero",
        "écris moi",
        "escríbeme",
    ),
    "money_crypto_terms": (
        "bitcoin",
        "btc",
        "crypto",
        "cryptocurrency",
        "cryptocurrencies",
        "forex",
        "fx",
        "usdt",
        "ethereum",
        "eth",
        "binance",
        "trading",
        "trader",
        "traders",
        "trade",
        "invest",
        "investing",
        "investment",
        "investments",
        "investor",
        "investors",
        "profit",
        "profits",
        "profitable",
        "returns",
        "roi",
        "income",
        "earn",
        "earning",
        "earnings",
        "earned",
        "dollars",
        "usd",
        "naira",
        "payout",
        "payouts",
        "wealth",
        "dividend",
        "dividends",
        "signals",
        "portfolio",
        "mining",
        "nft",
        "token",
        "tokens",
        "binary options",
        "inversión",
        "inversion",
        "ganancias",
        "ganar",
        "investissement",
        "gagner",
        "gewinn",
        "gewinne",
        "verdienen",
        "lucro",
        "lucros",
        "rendimento",
        "investimento",
        "guadagno",
        "guadagnare",
        "investimento",
    ),
    "fee_payment_request": (
        "fee",
        "fees",
        "processing fee",
        "registration fee",
        "pay the",
        "pay a",
        "pay upfront",
        "payment of",
        "upfront",
        "up front",
        "deposit",
        "gift card",
        "gift cards",
        "send money",
        "bank details",
        "bank account",
        "account details",
        "wire transfer",
        "western union",
        "moneygram",
        "refundable",
        "tasa",
        "cuota",
        "frais",
        "gebühr",
        "taxa",
        "pagamento",
        "pago",
        "pagar",
        "payer",
        "zahlen",
        "pagare",
    ),
    "meeting_request": (
        "demo",
        "quick call",
        "quick chat",
        "quick zoom",
        "brief call",
        "short call",
        "hop on",
        "jump on a call",
        "book a time",
        "book a call",
        "book a slot",
        "book some time",
        "schedule a",
        "calendar",
        "calendly",
        "free this week",
        "open next week",
        "free next week",
        "worth a chat",
        "worth a call",
        "worth a conversation",
        "discovery call",
        "15 minutes",
        "15 mins",
        "15 min",
        "15 minute",
        "10 minutes",
        "20 minutes",
        "30 minutes",
        "20 min",
        "30 min",
        "a call",
        "zoom call",
        "teams call",
        "grab a coffee",
        "reunión",
        "llamada",
        "rendez vous",
        "appel",
        "termin",
        "gespräch",
        "reunião",
        "chamada",
        "chiamata",
        "videollamada",
    ),
    "self_promotion_ask": (
        "review",
        "reviews",
        "rate",
        "rating",
        "ratings",
        "subscribe",
        "subscribed",
        "subscription",
        "register",
        "registration",
        "refer",
        "referral",
        "referrals",
        "follow my",
        "follow our",
        "like my",
        "like our",
        "like and share",
        "share my",
        "share our",
        "vote",
        "votes",
        "upvote",
        "sign up",
        "grab your",
        "save your seat",
        "save your spot",
        "newsletter",
        "podcast",
        "webinar",
        "masterclass",
        "my book",
        "my new book",
        "my course",
        "my channel",
        "my page",
        "our page",
        "testimonial",
        "product hunt",
        "suscríbete",
        "inscríbete",
        "inscrivez",
        "abonnez",
        "abonnieren",
        "inscreva",
        "iscriviti",
    ),
    "generic_flattery": (
        "impressed with your profile",
        "impressed by your profile",
        "impressed with your background",
        "impressed by your background",
        "impressed with your experience",
        "came across your profile",
        "stumbled upon your profile",
        "stumbled across your profile",
        "your impressive profile",
        "your impressive background",
        "your profile stood out",
        "caught my eye",
        "caught my attention",
        "love your profile",
        "loved your profile",
        "we have a lot in common",
        "like minded",
        "expand my network",
        "expand our network",
        "grow my network",
        "impresionado con tu perfil",
        "votre profil",
        "ihr profil",
        "seu perfil",
        "tu perfil",
        "il tuo profilo",
    ),
    "sales_language": (
        "we help",
        "we helped",
        "our clients",
        "our customers",
        "our services",
        "our solution",
        "our solutions",
        "our platform",
        "our agency",
        "our product",
        "our team",
        "solution",
        "solutions",
        "leads",
        "lead generation",
        "grow your",
        "scale your",
        "pricing",
        "discount",
        "offer",
        "package",
        "packages",
        "partner with",
        "help you",
        "help companies",
        "help businesses",
        "help brands",
        "case study",
        "case studies",
        "agency",
        "outsourcing",
        "outsource",
        "free trial",
        "free audit",
        "free consultation",
        "appointments",
        "pipeline",
        "ayudamos",
        "nuestros clientes",
        "nous aidons",
        "nos clients",
        "wir helfen",
        "unsere kunden",
        "ajudamos",
        "nossos clientes",
        "aiutiamo",
        "i nostri clienti",
    ),
    "followup_language": (
        "following up",
        "follow up",
        "followup",
        "bump",
        "bumping",
        "circling back",
        "circle back",
        "did you get a chance",
        "did you have a chance",
        "my last message",
        "my previous message",
        "my last note",
        "my earlier message",
        "top of your inbox",
        "last try",
        "last attempt",
        "haven't heard back",
        "havent heard back",
        "just checking in",
        "any thoughts",
        "seguimiento",
        "relance",
        "je me permets de revenir",
        "nachfassen",
        "kurz nachhaken",
    ),
    "urgency": (
        "urgent",
        "urgently",
        "act now",
        "limited time",
        "limited slots",
        "limited spots",
        "limited offer",
        "immediately",
        "asap",
        "within 24 hours",
        "within 24h",
        "today only",
        "expire",
        "expires",
        "suspend",
        "suspended",
        "suspension",
        "final notice",
        "deadline",
        "urgente",
        "dringend",
        "sofort",
    ),
    "credential_request": (
        "password",
        "verify your account",
        "verify your identity",
        "verify your profile",
        "verify the account",
        "login here",
        "log in here",
        "log in now",
        "login now",
        "otp",
        "verification code",
        "security code",
        "one time code",
        "passport",
        "ssn",
        "social security",
        "id card",
        "copy of your id",
        "copy of your passport",
        "confirm your details",
        "confirm your account",
        "confirm your identity",
        "card number",
        "card details",
        "pin",
        "contraseña",
        "mot de passe",
        "passwort",
        "senha",
        "verifica tu cuenta",
    ),
    "romance_terms": (
        "dear",
        "beautiful",
        "handsome",
        "lonely",
        "widow",
        "widower",
        "honest friend",
        "honest woman",
        "honest man",
        "honest relationship",
        "friendship",
        "my love",
        "sweetheart",
        "sweet",
        "smile",
        "peacekeeping",
        "peace keeping",
        "oil rig",
        "soulmate",
        "soul mate",
        "get to know you",
        "where are you from",
        "how old",
        "single",
        "cariño",
        "querida",
        "querido",
        "chérie",
        "chéri",
        "amore",
        "schatz",
    ),
    "easy_money_job": (
        "work from home",
        "working from home",
        "per day",
        "per week",
        "per hour",
        "a day from",
        "part time",
        "side income",
        "side hustle",
        "passive income",
        "be your own boss",
        "financial freedom",
        "hours a day",
        "hours per day",
        "no experience needed",
        "no experience required",
        "online business",
        "opportunity",
        "shortlisted",
        "mystery shopper",
        "mystery shopping",
        "from your phone",
        "trabajo desde casa",
        "travail à domicile",
        "von zu hause",
        "renda extra",
        "lavoro da casa",
    ),
    "pleasantry": (
        "congrats",
        "congratulations",
        "congratulation",
        "happy birthday",
        "happy work anniversary",
        "happy anniversary",
        "happy new year",
        "thanks for connecting",
        "thank you for connecting",
        "thanks for accepting",
        "thank you for accepting",
        "thanks for the connection",
        "well deserved",
        "proud of you",
        "felicidades",
        "félicitations",
        "glückwunsch",
        "herzlichen glückwunsch",
        "parabéns",
        "complimenti",
        "auguri",
        "gefeliciteerd",
        "enhorabuena",
    ),
    "mass_mailing_footer": (
        "unsubscribe",
        "opt out",
        "opt-out",
        "you are receiving this",
        "you received this",
        "sent via",
        "sent with",
        "powered by",
        "manage preferences",
        "manage your preferences",
        "no longer wish",
        "do not reply",
        "noreply",
        "no reply",
        "this message was sent",
        "click here",
        "view in browser",
        "tracking",
        "reply stop",
        "stop to end",
        "se désinscrire",
        "darse de baja",
        "abmelden",
        "descadastrar",
        "annulla iscrizione",
    ),
    "generic_job_offer": (
        "exciting opportunity",
        "exciting opportunities",
        "you have been selected",
        "you are selected",
        "hiring immediately",
        "immediate start",
        "remote position",
        "job offer",
        "vacancy",
        "vacancies",
        "apply now",
        "high paying",
        "flexible hours",
        "weekly pay",
        "daily pay",
        "salary of",
        "hr department",
        "hr manager",
        "recruitment team",
        "online interview",
        "interview on telegram",
        "equipment",
        "check to purchase",
        "oferta de trabajo",
        "offre d'emploi",
        "stellenangebot",
        "vaga",
        "offerta di lavoro",
    ),
    "shared_context": (
        "we met",
        "met you at",
        "met at",
        "at the conference",
        "at the meetup",
        "at the summit",
        "at the event",
        "at the workshop",
        "mutual friend",
        "mutual contact",
        "mutual colleague",
        "suggested i reach out",
        "suggested i connect",
        "suggested that i",
        "fellow alum",
        "fellow alumni",
        "fellow alumnus",
        "fellow graduate",
        "classmate",
        "classmates",
        "worked together",
        "former colleague",
        "your talk",
        "your presentation",
        "your session",
        "your keynote",
        "your article",
        "same team",
        "same school",
        "same university",
        "same class",
        "introduced us",
        "introduced me",
        "remember me",
        "long time",
        "nos conocimos",
        "nous nous sommes rencontrés",
        "kennengelernt",
        "nos conhecemos",
        "ci siamo conosciuti",
    ),
}


def _build_phrase_index() -> tuple[dict[str, tuple[str, ...]], frozenset[str]]:
    index: dict[str, list[str]] = {}
    for signal, phrases in LEXICONS.items():
        for phrase in phrases:
            key = " ".join(_TOKEN.findall(phrase.lower()))
            index.setdefault(key, [])
            if signal not in index[key]:
                index[key].append(signal)
    starts = frozenset(k.split(" ")[0] for k in index if " " in k)
    return {k: tuple(v) for k, v in index.items()}, starts


_PHRASES, _PHRASE_STARTS = _build_phrase_index()
# Matched on words with apostrophes removed ("i'm" -> "im").
_SELF_WORDS = frozenset("i im ive me my mine we weve our ours us".split())
_YOU_WORDS = frozenset("you youre youve your yours u ur".split())
_SHORTENERS = frozenset(
    {
        "bit.ly",
        "tinyurl.com",
        "t.co",
        "goo.gl",
        "ow.ly",
        "is.gd",
        "buff.ly",
        "rb.gy",
        "cutt.ly",
        "shorturl.at",
        "tiny.cc",
        "rebrand.ly",
        "bl.ink",
        "s.id",
        "t.ly",
        "v.gd",
        "shorte.st",
        "linktr.ee",
    }
)
_OFFPLATFORM_DOMAINS = frozenset({"wa.me", "t.me", "api.whatsapp.com", "chat.whatsapp.com", "telegram.me"})
_MEETING_DOMAINS = ("calendly.com", "meetings.hubspot.com", "savvycal.com", "cal.com", "chilipiper.com", "zcal.co")
_MONEY_RX = re.compile(r"[$€£₦₹]\s?\d|\d\s?(?:usd|eur|gbp|k\b|%)|b[i1!]tc[o0]in|cr[yi]pt[o0]")
_MERGE_RX = re.compile(
    r"%[A-Za-z_]{3,}%|\{\{?\s*[A-Za-z_ ]{3,30}\s*\}\}?|\[(?:insert|your|company|first|name|prospect|recipient)[^\]]{0,30}\]"
    r"|<<\s*\w+\s*>>|\*\|[A-Z_]+\|\*",
    re.IGNORECASE,
)
_INITIAL_SALUTATION_RX = re.compile(
    r"\W{0,3}(?:hi|hello|hey|dear|good\s+\w+)\s+[A-Z][\w'-]+\s+[A-Z]\.(?:\s|,|!|$)", re.IGNORECASE
)


@dataclass(frozen=True)
class Evidence:
    """What the signals read off one prepared item, computed once."""

    prepared: Prepared
    counts: Counter[str]
    n_self: int
    n_you: int
    n_recipient_questions: int


def gather_evidence(p: Prepared) -> Evidence:
    """Lexicon hits, pronoun counts and questions of one prepared item, in one pass over its words."""
    low = p.raw.lower()
    tokens = _TOKEN.findall(low.replace("'", "").replace("’", ""))
    counts: Counter[str] = Counter()
    phrases, starts = _PHRASES, _PHRASE_STARTS
    n_tok = len(tokens)
    n_self = n_you = 0
    for i, tok in enumerate(tokens):
        if tok in _SELF_WORDS:
            n_self += 1
        elif tok in _YOU_WORDS:
            n_you += 1
        hit = phrases.get(tok)
        if hit:
            for name in hit:
                counts[name] += 1
        if tok in starts:
            key = tok
            for j in range(i + 1, min(i + _MAX_PHRASE, n_tok)):
                key = f"{key} {tokens[j]}"
                hit = phrases.get(key)
                if hit:
                    for name in hit:
                        counts[name] += 1
    counts["money_crypto_terms"] += len(_MONEY_RX.findall(low))
    counts["offplatform_contact"] += p.n_phones + p.n_emails + sum(d in _OFFPLATFORM_DOMAINS for d in p.domains)
    counts["meeting_request"] += sum(d.endswith(_MEETING_DOMAINS) for d in p.domains)
    n_q = 0
    if "?" in low:
        n_q = sum(1 for q in re.split(r"[.!\n]", low) if "?" in q and _YOU_WORDS.intersection(_TOKEN.findall(q)))
    return Evidence(p, counts, n_self, n_you, n_q)


def _sat(n: float, cap: float) -> float:
    """Saturating scale: 0 at 0, 1 at `cap` and above."""
    return min(n, cap) / cap


@dataclass(frozen=True)
class Signal:
    """A named, human-described feature computed from an item's evidence."""

    name: str
    description: str
    compute: Callable[[Evidence], float]


def _lexicon(name: str, cap: float) -> Callable[[Evidence], float]:
    return lambda e: _sat(e.counts[name], cap)


def _focus(e: Evidence, mine: bool) -> float:
    total = e.n_self + e.n_you
    if total < 3:
        return 0.0
    return (e.n_self if mine else e.n_you) / total


def _caps_density(e: Evidence) -> float:
    raw = e.prepared.raw
    n_letters = sum(map(str.isalpha, raw))
    if n_letters < 20:
        return 0.0
    return sum(map(str.isupper, raw)) / n_letters


def _within_day(e: Evidence) -> bool:
    m = e.prepared.item.minutes_since_connected
    return e.prepared.item.kind == "message" and m is not None and m <= 1440


def _meta(flag: Callable[[Item], bool]) -> Callable[[Evidence], float]:
    return lambda e: 1.0 if flag(e.prepared.item) else 0.0


SIGNALS: tuple[Signal, ...] = (
    Signal("link_count", "links in the text (0 none, 1 at three or more)", lambda e: _sat(len(e.prepared.domains), 3)),
    Signal(
        "shortened_link",
        "a link through a URL shortener (bit.ly, tinyurl, ...)",
        lambda e: 1.0 if any(d in _SHORTENERS for d in e.prepared.domains) else 0.0,
    ),
    Signal(
        "offplatform_contact",
        "asks to move off LinkedIn: WhatsApp, Telegram, a phone number or an e-mail address",
        _lexicon("offplatform_contact", 2),
    ),
    Signal("money_crypto_terms", "money, crypto, trading or income vocabulary", _lexicon("money_crypto_terms", 4)),
    Signal("fee_payment_request", "asks for a fee, a payment, a deposit or bank details", _lexicon("fee_payment_request", 2)),
    Signal(
        "meeting_request", "asks for a call, a demo or a meeting (calendar links, '15 minutes')", _lexicon("meeting_request", 2)
    ),
    Signal(
        "self_promotion_ask",
        "asks to review, rate, subscribe, register, follow, vote or refer; promotes a podcast, webinar or newsletter",
        _lexicon("self_promotion_ask", 3),
    ),
    Signal(
        "template_marker",
        "unfilled merge tokens or bracket placeholders such as %FIRSTNAME% or [insert company name]",
        lambda e: 1.0 if _MERGE_RX.search(e.prepared.raw) else 0.0,
    ),
    Signal(
        "salutation_with_initial",
        "greets the recipient by first name plus an initial, as a profile scraper would ('Hi Gary A.')",
        lambda e: 1.0 if _INITIAL_SALUTATION_RX.match(e.prepared.item.text) else 0.0,
    ),
    Signal(
        "generic_flattery",
        "generic flattery about the recipient's profile ('impressed with your profile')",
        _lexicon("generic_flattery", 2),
    ),
    Signal(
        "sales_language", "vendor vocabulary: 'we help', 'our clients', leads, solutions, offer", _lexicon("sales_language", 4)
    ),
    Signal(
        "self_focus", "share of first-person words (I, we, our) among first- and second-person words", lambda e: _focus(e, True)
    ),
    Signal(
        "you_focus", "share of second-person words (you, your) among first- and second-person words", lambda e: _focus(e, False)
    ),
    Signal(
        "questions_about_recipient",
        "questions addressed to the recipient (1 at three or more)",
        lambda e: _sat(e.n_recipient_questions, 3),
    ),
    Signal(
        "exclamation_density",
        "exclamation marks per 100 characters (1 at five or more)",
        lambda e: _sat(100 * e.prepared.raw.count("!") / max(len(e.prepared.raw), 20), 5),
    ),
    Signal("caps_density", "share of capital letters among letters", _caps_density),
    Signal(
        "length",
        "text length on a log scale (0 empty, 1 at 1,500 characters)",
        lambda e: min(math.log1p(len(e.prepared.raw.strip())) / math.log1p(1500), 1.0),
    ),
    Signal(
        "empty_note",
        "a connection request with no note",
        lambda e: 1.0 if e.prepared.item.kind == "invite" and len(e.prepared.raw.strip()) < 3 else 0.0,
    ),
    Signal(
        "followup_language",
        "follow-up or bump wording ('just following up', 'top of your inbox')",
        _lexicon("followup_language", 2),
    ),
    Signal("urgency", "pressure and urgency ('urgent', 'act now', 'account will be suspended')", _lexicon("urgency", 2)),
    Signal(
        "credential_request",
        "asks for a password, a code, an ID, a passport or card details, or to verify an account",
        _lexicon("credential_request", 2),
    ),
    Signal(
        "romance_terms",
        "romance-scam vocabulary (dear, beautiful, lonely, widow, honest friendship)",
        _lexicon("romance_terms", 3),
    ),
    Signal(
        "easy_money_job",
        "easy-money job wording (work from home, per day, side income, be your own boss)",
        _lexicon("easy_money_job", 3),
    ),
    Signal("pleasantry", "congratulations, thanks for connecting, birthday wishes", _lexicon("pleasantry", 2)),
    Signal(
        "shared_context",
        "mentions a real shared context: met at, mutual friend, alumni, worked together",
        _lexicon("shared_context", 2),
    ),
    Signal(
        "mass_mailing_footer",
        "tool or mailing-list wording: unsubscribe, opt out, 'sent via', 'powered by'",
        _lexicon("mass_mailing_footer", 2),
    ),
    Signal(
        "generic_job_offer",
        "a generic job offer: 'exciting opportunity', 'you have been selected', weekly pay",
        _lexicon("generic_job_offer", 2),
    ),
    Signal("names_recipient_or_sender", "the text names the sender or the recipient", lambda e: _sat(e.prepared.masked_names, 2)),
    Signal("no_photo", "sender has no profile photo (known from metadata)", _meta(lambda i: i.sender_has_photo is False)),
    Signal("has_photo", "sender has a profile photo (known from metadata)", _meta(lambda i: i.sender_has_photo is True)),
    Signal(
        "few_connections",
        "sender has fewer than 50 connections (known from metadata)",
        _meta(lambda i: i.sender_connections is not None and i.sender_connections < 50),
    ),
    Signal(
        "many_connections",
        "sender has 150 or more connections (known from metadata)",
        _meta(lambda i: i.sender_connections is not None and i.sender_connections >= 150),
    ),
    Signal(
        "new_account",
        "sender's account is under 30 days old (known from metadata)",
        _meta(lambda i: i.sender_account_age_days is not None and i.sender_account_age_days < 30),
    ),
    Signal(
        "established_account",
        "sender's account is over a year old (known from metadata)",
        _meta(lambda i: i.sender_account_age_days is not None and i.sender_account_age_days >= 365),
    ),
    Signal("no_mutual_connections", "no mutual connections (known from metadata)", _meta(lambda i: i.mutual_connections == 0)),
    Signal(
        "has_mutual_connections",
        "at least one mutual connection (known from metadata)",
        _meta(lambda i: i.mutual_connections is not None and i.mutual_connections > 0),
    ),
    Signal("message_within_day_of_connecting", "a message within a day of connecting", lambda e: 1.0 if _within_day(e) else 0.0),
    Signal(
        "pitch_within_day_of_connecting",
        "sales or meeting wording within a day of connecting",
        lambda e: 1.0 if _within_day(e) and (e.counts["sales_language"] or e.counts["meeting_request"]) else 0.0,
    ),
    Signal(
        "unanswered_followups",
        "earlier messages from this sender left unanswered (1 at three or more)",
        lambda e: _sat(e.prepared.item.prior_unanswered or 0, 3),
    ),
)
SIGNAL_NAMES = tuple(s.name for s in SIGNALS)
SIGNAL_DESCRIPTIONS = {s.name: s.description for s in SIGNALS}


def signal_values(prepared: Prepared) -> list[float]:
    """The named signals of one prepared item, in `SIGNALS` order."""
    evidence = gather_evidence(prepared)
    return [float(s.compute(evidence)) for s in SIGNALS]


# --------------------------------------------------------------------------------------
# The featurizer: a scikit-learn transformer
# --------------------------------------------------------------------------------------


def _fit_block(docs: Iterable[list[str]], min_df: int, max_features: int) -> tuple[dict[str, int], np.ndarray]:
    df: Counter[str] = Counter()
    n_docs = 0
    for grams in docs:
        n_docs += 1
        df.update(set(grams))
    kept = [(g, n) for g, n in df.items() if n >= min_df]
    kept.sort(key=lambda gn: (-gn[1], gn[0]))
    kept = sorted(kept[:max_features])
    vocab = {g: i for i, (g, _) in enumerate(kept)}
    idf = np.array([math.log((1 + n_docs) / (1 + n)) + 1.0 for _, n in kept], dtype=np.float64)
    return vocab, idf


def _tfidf(grams: list[str], vocab: dict[str, int], idf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sublinear TF-IDF of one document's n-grams, L2-normalised: (indices, values)."""
    counts = Counter(grams)
    get = vocab.get
    cols = np.fromiter(map(get, counts, repeat(-1)), dtype=np.int64, count=len(counts))
    keep = cols >= 0
    if not keep.any():
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    return _weigh(cols[keep], np.array(list(counts.values()), dtype=np.float64)[keep], idf)


def _weigh(idx: np.ndarray, tf: np.ndarray, idf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    vals = (1.0 + np.log(tf)) * idf[idx]
    return idx, vals / np.sqrt(vals @ vals)


_WORD_CACHE_SIZE = 200_000


class ItemFeaturizer(TransformerMixin, BaseEstimator):
    """Items -> sparse [word TF-IDF | char TF-IDF | signals]; fit learns vocabularies and idf."""

    def __init__(
        self,
        word_min_df: int = 2,
        char_min_df: int = 3,
        word_max_features: int = 40_000,
        char_max_features: int = 80_000,
        use_words: bool = True,
        use_chars: bool = True,
        use_signals: bool = True,
        signal_weight: float = 1.0,
    ):
        self.word_min_df = word_min_df
        self.char_min_df = char_min_df
        self.word_max_features = word_max_features
        self.char_max_features = char_max_features
        self.use_words = use_words
        self.use_chars = use_chars
        self.use_signals = use_signals
        self.signal_weight = signal_weight

    def fit(self, items: Sequence[Item], y: Any = None) -> ItemFeaturizer:
        norms = [prepare(it).norm for it in items]
        empty: tuple[dict[str, int], np.ndarray] = ({}, np.zeros(0))
        self.word_vocab_, self.word_idf_ = (
            _fit_block((word_ngrams(n) for n in norms), self.word_min_df, self.word_max_features) if self.use_words else empty
        )
        self.char_vocab_, self.char_idf_ = (
            _fit_block((char_ngrams(n) for n in norms), self.char_min_df, self.char_max_features) if self.use_chars else empty
        )
        self.n_signals_ = len(SIGNALS) if self.use_signals else 0
        self.n_features_out_ = len(self.word_vocab_) + len(self.char_vocab_) + self.n_signals_
        return self

    def row(self, prepared: Prepared) -> tuple[np.ndarray, np.ndarray]:
        """Column indices and values of one prepared item (the one per-item code path)."""
        idx: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        offset = 0
        if self.use_words:
            i, v = _tfidf(word_ngrams(prepared.norm), self.word_vocab_, self.word_idf_)
            idx.append(i)
            vals.append(v)
            offset += len(self.word_vocab_)
        if self.use_chars:
            i, v = self._char_tfidf(prepared.norm)
            idx.append(i + offset)
            vals.append(v)
            offset += len(self.char_vocab_)
        if self.use_signals:
            weight = self.signal_weight
            nz = [(offset + k, v * weight) for k, v in enumerate(signal_values(prepared)) if v]
            idx.append(np.array([k for k, _ in nz], dtype=np.int64))
            vals.append(np.array([v for _, v in nz], dtype=np.float64))
        return np.concatenate(idx), np.concatenate(vals)

    def _char_tfidf(self, norm: str) -> tuple[np.ndarray, np.ndarray]:
        """The character block: the same values as `_tfidf(char_ngrams(norm), ...)`.

        Words repeat across messages, so each word's vocabulary columns are looked up
        once and kept (a bounded cache, not pickled); a document is then a handful of
        cached arrays instead of hundreds of dictionary lookups.
        """
        cache = self.__dict__.setdefault("_word_cols", {})
        vocab = self.char_vocab_
        parts = []
        for word in norm.split():
            cols = cache.get(word)
            if cols is None:
                if len(cache) >= _WORD_CACHE_SIZE:
                    cache.clear()
                found = [vocab[g] for g in word_char_ngrams(word) if g in vocab]
                cols = cache[word] = np.array(found, dtype=np.int64)
            parts.append(cols)
        if not parts:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        idx, tf = np.unique(np.concatenate(parts), return_counts=True)
        if not len(idx):
            return idx, np.zeros(0)
        return _weigh(idx, tf.astype(np.float64), self.char_idf_)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state.pop("_word_cols", None)
        return state

    def transform(self, items: Sequence[Item]) -> sp.csr_matrix:
        rows = [self.row(prepare(it)) for it in items]
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        indptr[1:] = np.cumsum([len(i) for i, _ in rows])
        indices = np.concatenate([i for i, _ in rows]) if rows else np.zeros(0, dtype=np.int64)
        data = np.concatenate([v for _, v in rows]) if rows else np.zeros(0)
        return sp.csr_matrix((data, indices, indptr), shape=(len(rows), self.n_features_out_))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        names = [f"word:{g}" for g in sorted(self.word_vocab_, key=self.word_vocab_.__getitem__)]
        names += [f"char:{g}" for g in sorted(self.char_vocab_, key=self.char_vocab_.__getitem__)]
        if self.use_signals:
            names += [f"signal:{n}" for n in SIGNAL_NAMES]
        return np.asarray(names, dtype=object)


# --------------------------------------------------------------------------------------
# Features for a whole chunk at once (the batch path)
# --------------------------------------------------------------------------------------


_BLOCK_RANK = 1 << 40  # ranks of later blocks (words, characters, signals) come after earlier ones
_SUBLINEAR_TF = np.concatenate(([0.0], 1.0 + np.log(np.arange(1, 256, dtype=np.float64))))  # 1 + log(count)


def _tfidf_block(rows: np.ndarray, cols: np.ndarray, ranks: np.ndarray, idf: np.ndarray, n_rows: int) -> tuple[np.ndarray, ...]:
    """Sublinear TF-IDF, L2-normalised per row, from one (row, column, rank) per n-gram occurrence.

    Returns (rows, columns, values, first rank) sorted by row then column; the first
    rank orders a row's features as `ItemFeaturizer.row` does (first occurrence), which
    decides which of two equal contributions is named first.
    """
    if not len(rows):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0, dtype=np.int64)
    col_bits = max(len(idf) - 1, 1).bit_length()
    keys = (rows << col_bits) | cols
    rank_bits = max(int(ranks.max()).bit_length(), 1)
    if int(keys.max()).bit_length() + rank_bits <= 62:
        # one SIMD sort of (row, column, rank) packed in an int64: groups by feature, lowest rank first
        packed = np.sort((keys << rank_bits) | ranks)
        keys, ranks = packed >> rank_bits, packed
    else:
        order = np.lexsort((ranks, keys))
        keys, ranks, rank_bits = keys[order], ranks[order], 0
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    counts = np.diff(np.append(starts, len(keys)))
    first = ranks[starts] & ((1 << rank_bits) - 1) if rank_bits else ranks[starts]
    unique = keys[starts]
    r, c = unique >> col_bits, unique & ((1 << col_bits) - 1)
    tf = _SUBLINEAR_TF[np.minimum(counts, len(_SUBLINEAR_TF) - 1)]
    if (many := counts >= len(_SUBLINEAR_TF)).any():
        tf[many] = 1.0 + np.log(counts[many].astype(np.float64))
    vals = tf * idf[c]
    norms = np.sqrt(np.bincount(r, weights=vals * vals, minlength=n_rows))
    return r, c, vals / norms[r], first


class ChunkFeaturizer:
    """`ItemFeaturizer.transform` for a whole chunk at once, with the same values (batch scoring).

    It lives here so that this module stays the only code that turns items into
    features; tests check that it matches `ItemFeaturizer.transform` exactly.

    Reuses the featurizer's `prepare`, `word_ngrams` and `signal_values`. Character
    n-grams are integers in base B (B - 1 = the number of distinct characters in the
    vocabulary), computed for every position of the chunk with numpy and looked up in an
    open-addressing hash table; an n-gram holding a character outside the vocabulary
    cannot match. As in `char_ngrams`, n-grams are taken word by word, and each distinct
    word's columns are looked up once and kept (up to `max_words`). `ok` is
    False when the vocabulary does not fit in 63 bits.
    """

    _MUL = np.uint64(0x9E3779B97F4A7C15)

    def __init__(self, featurizer: ItemFeaturizer):
        self.f = featurizer
        self.n_words = len(featurizer.word_vocab_)
        self.n_chars = len(featurizer.char_vocab_)
        self.lo, self.hi = CHAR_NGRAMS
        self.max_words = 100_000  # distinct words whose columns are kept
        self.word_ids: dict[str, int] = {}
        self.word_start: list[int] = []
        self.word_len: list[int] = []
        self.arena = np.zeros(0, dtype=np.int64)
        alphabet = sorted({ch for gram in featurizer.char_vocab_ for ch in gram})
        self.base = len(alphabet) + 1
        lengths = {len(g) for g in featurizer.char_vocab_}
        self.ok = self.base**self.hi < 2**63 and lengths <= set(range(self.lo, self.hi + 1))
        if not self.ok or not featurizer.use_chars:
            return
        self.codes = np.zeros(0x110000, dtype=np.int16 if self.base < 2**15 else np.int32)
        for i, ch in enumerate(alphabet, 1):
            self.codes[ord(ch)] = i
        self.separator = next(chr(c) for c in range(0xFFFF, 0, -1) if self.codes[c] == 0)
        keys = np.array([self._key(g) for g in featurizer.char_vocab_], dtype=np.int64)
        cols = np.fromiter(featurizer.char_vocab_.values(), dtype=np.int64, count=len(keys))
        self.bits = max(int(np.ceil(np.log2(max(len(keys), 1) * 4))), 10)
        self.mask = (1 << self.bits) - 1
        self.table_keys = np.full(1 << self.bits, -1, dtype=np.int64)
        self.table_cols = np.zeros(1 << self.bits, dtype=np.int64)
        for key, col, slot in zip(keys.tolist(), cols.tolist(), self._slots(keys).tolist(), strict=True):
            while self.table_keys[slot] != -1:
                slot = (slot + 1) & self.mask
            self.table_keys[slot], self.table_cols[slot] = key, col

    def _key(self, gram: str) -> int:
        key = 0
        for ch in gram:
            key = key * self.base + int(self.codes[ord(ch)])
        return key

    def _slots(self, keys: np.ndarray) -> np.ndarray:
        return ((keys.astype(np.uint64) * self._MUL) >> np.uint64(64 - self.bits)).astype(np.int64)

    def _lookup(self, keys: np.ndarray) -> np.ndarray:
        found = np.full(len(keys), -1, dtype=np.int64)
        pending = np.arange(len(keys))
        slots = self._slots(keys)
        while len(pending):
            at = self.table_keys[slots]
            hit = at == keys
            found[pending[hit]] = self.table_cols[slots[hit]]
            more = ~hit & (at != -1)
            pending, keys, slots = pending[more], keys[more], (slots[more] + 1) & self.mask
        return found

    def _hits(self, segments: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(segment, column, rank within the segment) of every vocabulary n-gram of each segment."""
        empty = np.zeros(0, dtype=np.int64)
        if not segments:
            return empty, empty, empty
        joined = self.separator.join(segments) + self.separator  # the separator is in no n-gram
        points = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype="<u4")
        codes = self.codes[points].astype(np.int64)
        total = len(codes)
        lengths = np.array([len(g) + 1 for g in segments])
        seg_of = np.repeat(np.arange(len(segments)), lengths)
        seg_start = np.cumsum(lengths) - lengths
        width = int(lengths.max())
        valid = codes > 0
        keys, ok = codes.copy(), valid.copy()
        segs, cols, ranks = [empty], [empty], [empty]
        for n in range(2, self.hi + 1):
            size = total - n + 1
            if size <= 0:
                break
            keys = keys[:size] * self.base + codes[n - 1 :]
            ok = ok[:size] & valid[n - 1 :]
            if n < self.lo:
                continue
            at = np.flatnonzero(ok)
            col = self._lookup(keys[at])
            hit = col >= 0
            at = at[hit]
            seg = seg_of[at]
            segs.append(seg)
            cols.append(col[hit])
            ranks.append((n - self.lo) * width + (at - seg_start[seg]))  # char_ngrams order: by length, then position
        return np.concatenate(segs), np.concatenate(cols), np.concatenate(ranks)

    def _add_words(self, words: list[str]) -> None:
        """Look up the vocabulary columns of new words, in `word_char_ngrams` order, and keep them."""
        seg, cols, ranks = self._hits([f" {w} " for w in words])
        order = np.lexsort((ranks, seg))
        counts = np.bincount(seg, minlength=len(words)).tolist()
        base = len(self.arena)
        self.arena = np.concatenate([self.arena, cols[order]])
        first = len(self.word_ids)
        for i, (word, n) in enumerate(zip(words, counts, strict=True)):
            self.word_ids[word] = first + i
            self.word_start.append(base)
            self.word_len.append(n)
            base += n

    def _chars(self, prepared: Sequence[Prepared]) -> tuple[np.ndarray, ...]:
        """Each distinct word's columns are looked up once and kept (bounded), then gathered per item."""
        tokens: list[str] = []
        per_item: list[int] = []
        for p in prepared:
            words = p.norm.split()
            tokens += words
            per_item.append(len(words))
        distinct = dict.fromkeys(tokens)
        missing = [w for w in distinct if w not in self.word_ids]
        if missing:
            if len(self.word_ids) + len(missing) > self.max_words:  # start the cache afresh
                self.word_ids, self.word_start, self.word_len, self.arena = {}, [], [], np.zeros(0, dtype=np.int64)
                missing = list(distinct)
            self._add_words(missing)
        get = self.word_ids.__getitem__
        ids_arr = np.fromiter(map(get, tokens), dtype=np.int64, count=len(tokens))
        starts = np.asarray(self.word_start, dtype=np.int64)[ids_arr] if len(ids_arr) else ids_arr
        lengths = np.asarray(self.word_len, dtype=np.int64)[ids_arr] if len(ids_arr) else ids_arr
        offsets = np.cumsum(lengths) - lengths
        within = np.arange(int(lengths.sum())) - np.repeat(offsets, lengths)
        cols = self.arena[np.repeat(starts, lengths) + within]
        rows = np.repeat(np.repeat(np.arange(len(prepared)), per_item), lengths)
        width = int(lengths.max()) + 1 if len(lengths) else 1
        ranks = np.repeat(np.arange(len(tokens)), lengths) * width + within  # word by word, then word_char_ngrams order
        return _tfidf_block(rows, cols, ranks, self.f.char_idf_, len(prepared))

    def _words(self, prepared: Sequence[Prepared]) -> tuple[np.ndarray, ...]:
        get = self.f.word_vocab_.get
        lengths, cols = [], []
        for p in prepared:
            found = [c for c in map(get, word_ngrams(p.norm)) if c is not None]
            lengths.append(len(found))
            cols += found
        rows = np.repeat(np.arange(len(prepared)), lengths)
        return _tfidf_block(rows, np.asarray(cols, dtype=np.int64), np.arange(len(cols)), self.f.word_idf_, len(prepared))

    def transform_ranked(self, items: Sequence[Item]) -> tuple[sp.csr_matrix, np.ndarray]:
        """The chunk's feature matrix and, per stored value, its rank in `ItemFeaturizer.row` order."""
        prepared = [prepare(it) for it in items]
        blocks: list[tuple[np.ndarray, ...]] = []
        offset = 0
        if self.f.use_words:
            r, c, v, k = self._words(prepared)
            blocks.append((r, c + offset, v, k))
            offset += self.n_words
        if self.f.use_chars:
            r, c, v, k = self._chars(prepared)
            blocks.append((r, c + offset, v, k + _BLOCK_RANK))
            offset += self.n_chars
        if self.f.use_signals:
            sig = np.asarray([signal_values(p) for p in prepared], dtype=np.float64).reshape(len(prepared), -1)
            sig *= getattr(self.f, "signal_weight", 1.0)
            r, c = np.nonzero(sig)
            blocks.append((r, c + offset, sig[r, c], c + 2 * _BLOCK_RANK))
        rows, cols, vals, ranks = (np.concatenate([b[i] for b in blocks]) for i in range(4))
        order = np.argsort(rows, kind="stable")  # merges the blocks' sorted runs
        indptr = np.zeros(len(items) + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=len(items)), out=indptr[1:])
        X = sp.csr_matrix((vals[order], cols[order], indptr), shape=(len(items), self.f.n_features_out_))
        return X, ranks[order]

    def transform(self, items: Sequence[Item]) -> sp.csr_matrix:
        return self.transform_ranked(items)[0]


def items_from_records(records: Iterable[Mapping[str, Any]]) -> list[Item]:
    """Items from dict-like rows (raises ValueError naming the row and field)."""
    out = []
    for n, rec in enumerate(records, 1):
        try:
            out.append(Item.from_mapping(rec))
        except ValueError as exc:
            raise ValueError(f"row {n}: {exc}") from None
    return out
