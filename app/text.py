"""The text of an item as the model reads it, with a map back to the received text.

`prepare` decodes HTML (Sponsored InMail arrives as markup), replaces links by a marker
word plus their domain, drops e-mail addresses and phone numbers (contact details are
no evidence by themselves), masks people's names (a name must never carry evidence) and
lower-cases. Every pattern here runs in linear time on any input: quantifiers are bounded
or possessive, and each pattern can only start at the edge of a run of its characters.
"""

from __future__ import annotations

import html
import re
import tomllib
import unicodedata
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

from app.items import Item

NAME_TOKEN = "xname"
KEPT, REPLACED, FOLDED = 0, 1, 2  # how a part of the normalised text comes from the received one
# Scripts written without spaces between words (Han, kana) and Hangul, whose words carry their
# particles: each of their characters is a word by itself, to the model and to the lexicons, so
# their word bigrams are the character pairs that bag-of-words models of these languages use.
SINGLE_WORD = (
    "\u1100-\u11ff\u3005-\u3007\u3021-\u3029\u3031-\u3035\u303b\u303c\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f"
    "\uac00-\ud7af\ud7b0-\ud7ff\uf900-\ufaff\uff66-\uffdc\U00020000-\U0003134f"
)


def _mark_ranges() -> str:
    """A regex class body of every combining mark (Unicode category M*): vowel signs of Indic scripts,
    Arabic and Hebrew points, accents typed apart. They are not `\\w`, yet they are part of a word."""
    codes = [c for c in range(0x30000) if unicodedata.category(chr(c)).startswith("M")]
    codes += range(0xE0100, 0xE01F0)  # variation selectors supplement, the only marks above U+30000
    ranges: list[tuple[int, int]] = []
    for c in codes:
        if ranges and ranges[-1][1] == c - 1:
            ranges[-1] = (ranges[-1][0], c)
        else:
            ranges.append((c, c))
    return "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" if b > a else re.escape(chr(a)) for a, b in ranges)


WORD_MARKS = _mark_ranges()
# The model's words: one character of those scripts; a letter followed by letters or combining
# marks (Devanagari and Thai vowel signs, Arabic vowel points), two characters at least; or a
# single symbol that is not punctuation nor a mark (emoji, $, ₹, ?, !).
WORD_PATTERN = (
    f"(?u)(?=\\w)[{SINGLE_WORD}]|[^\\W{SINGLE_WORD}](?:[^\\W{SINGLE_WORD}]|[{WORD_MARKS}])+"
    + f"|[^\\w\\s{WORD_MARKS}"
    + r".,;:'\"()\[\]{}<>/\\|_*#@&~^`=+-]"
)
URL_TOKEN = "xurl"

_TLDS = (
    "com|net|org|io|co|ly|me|in|ng|ke|info|biz|xyz|app|link|gl|gd|cc|to|de|fr|es|it|br|uk|us|ai|pk|ph|id|ae|za|gh|"
    "sa|eg|ca|au|nz|mx|ar|cl|pe|pt|tr|pl|nl|be|ch|at|ru|vn|my|sg|bd|lk|site|online|shop|club|top|live|page|ws"
)
_MARKUP = re.compile(
    r"(?P<tag></?[a-zA-Z][a-zA-Z0-9]{0,15}(?:\s[^<>]*+)?/?>)"
    r"|(?P<entity>&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z][a-zA-Z0-9]{1,31});)"
)
# A word character that a number cannot touch and still be a phone number. Chinese, Japanese, Thai
# and Korean write numbers against their words ("請致電0912345678", "5678로"): those scripts may.
JOINED = r"[^\W\u0e00-\u0e7f\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7a3\uf900-\ufaff]"
_CONTACT_PARTS = (
    r"(?P<email>(?<![\w.+-])[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8})",
    r"(?P<url>(?:https?://|www\.)[^\s<>\"'`)\]]*+)",
    rf"(?P<domain>(?<![\w.@/-])(?:[a-z0-9][a-z0-9-]{{0,62}}\.){{1,4}}(?:{_TLDS})\b(?:/[^\s<>\"'`)\]]*+)?)",
    rf"(?P<phone>(?<!{JOINED}|[/+])\+?[0-9](?:[ ().-]{{0,2}}[0-9]){{8,14}}(?!{JOINED}))",
)
# What each part cannot match without (tested on the whole text first, a far cheaper scan).
_NEEDS_URL = re.compile(r"https?://|www\.", re.IGNORECASE)
_NEEDS_DOMAIN = re.compile(rf"\.(?:{_TLDS})\b", re.IGNORECASE)
_HREF = re.compile(r"href\s{0,5}=\s{0,5}[\"']?([^\"'\s>]{1,2000})", re.IGNORECASE)
_BLOCK_TAG = re.compile(r"<\s{0,5}/?\s{0,5}(?:br|p|div|li|tr|h[1-6])\b", re.IGNORECASE)
MERGE_TOKEN = re.compile(
    r"%[A-Za-z_]{3,20}%|\{\{ ?[A-Za-z_][A-Za-z_ ]{0,30}\}\}|<<[A-Za-z_]{3,20}>>|\*\|[A-Z_]{3,20}\|\*"
    r"|\[(?:insert|your|company|first|name|prospect|recipient)[^\[\]]{0,30}\]",
    re.IGNORECASE,
)
_SIGNOFF_NAME = re.compile(
    r"(?:regards|thanks|thank you|best|cheers|sincerely|warmly|saludos|cordialement|gr[üu]ße|"
    r"abra[çc]os|atenciosamente|cordiali saluti|un saluto)[ ,!.]{0,3}\n{1,3} {0,5}"
    r"(?P<name>[A-ZÀ-Ý][\w'’-]{1,30}(?:[ \t][A-ZÀ-Ý][\w'’-]{1,30})?) {0,5}$",
    re.IGNORECASE,
)


def domain_of(url: str) -> str:
    low = url.lower()
    for prefix in ("https://", "http://"):
        if low.startswith(prefix):
            low = low[len(prefix) :]
    if low.startswith("www."):
        low = low[4:]
    for sep in "/?#:":
        low = low.split(sep, 1)[0]
    return low


def _known_names(item: Item) -> tuple[str, ...]:
    return _names_of(item.sender_name, item.recipient_name)


@lru_cache(maxsize=4096)
def _names_of(sender: str | None, recipient: str | None) -> tuple[str, ...]:
    """The parts of two people's names worth masking, longest first (the same senders recur)."""
    names: set[str] = set()
    for full in (sender, recipient):
        for part in (full or "").replace(",", " ").split():
            part = part.strip(".")
            if len(part) >= 2 and part.lower() not in _not_names():
                names.add(part)
    return tuple(sorted(names, key=len, reverse=True))


@dataclass(frozen=True)
class Prepared:
    """An item's text as the model reads it, plus the facts signals need."""

    item: Item
    raw: str  # the received text with entities decoded and tags turned into spaces or line breaks
    norm: str  # lower-cased; links -> "xurl domain", e-mails and phones dropped, names -> "xname"
    sources: tuple[tuple[int, int, int, int], ...]  # (norm start, received start, received end, KEPT/REPLACED/FOLDED)
    domains: tuple[str, ...]
    n_emails: int
    n_phones: int
    has_markup: bool

    def start_of(self, i: int) -> int:
        """Where the source of norm[i] starts in the received text."""
        for at, a, _, kind in reversed(self.sources):
            if at <= i:
                return a + i - at if kind == KEPT else a if kind == REPLACED else self.starts[i]
        raise IndexError(i)

    def end_of(self, i: int) -> int:
        """Where the source of norm[i] ends in the received text."""
        for at, a, b, kind in reversed(self.sources):
            if at <= i:
                return a + i - at + 1 if kind == KEPT else b if kind == REPLACED else self.ends[i]
        raise IndexError(i)

    @cached_property
    def starts(self) -> tuple[int, ...]:
        """norm index -> start of its source in the received text."""
        return self._offsets()[0]

    @cached_property
    def ends(self) -> tuple[int, ...]:
        """norm index -> end of its source in the received text."""
        return self._offsets()[1]

    def _offsets(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        st: list[int] = []
        en: list[int] = []
        text = self.item.text
        bounds = [at for at, _, _, _ in self.sources[1:]] + [len(self.norm)]
        for (at, a, b, kind), end in zip(self.sources, bounds, strict=True):
            length = end - at
            if kind == REPLACED:
                st += [a] * length
                en += [b] * length
            elif kind == KEPT:
                st += range(a, b)
                en += range(a + 1, b + 1)
            else:  # folding changed the length: map character by character
                for i, ch in enumerate(text[a:b]):
                    k = len(_fold(ch))
                    st += [a + i] * k
                    en += [a + i + 1] * k
        return tuple(st), tuple(en)


def _replacements(text: str) -> tuple[list[tuple[int, int, str, str]], list[str], int, int, bool]:
    """(start, end, model text, readable text) spans for markup, entities, links, e-mails and phones."""
    spans: list[tuple[int, int, str, str]] = []
    domains: list[str] = []
    n_emails = n_phones = 0
    has_markup = False
    if "<" in text or "&" in text:
        for m in _MARKUP.finditer(text):
            s = m.group(0)
            if m.lastgroup == "tag":
                has_markup = True
                href = _HREF.search(s)
                if href:
                    domains.append(domain_of(href.group(1)))
                    spans.append((m.start(), m.end(), f" {URL_TOKEN} {domains[-1]} ", " "))
                else:
                    sep = "\n" if _BLOCK_TAG.match(s) else " "
                    spans.append((m.start(), m.end(), sep, sep))
            else:
                decoded = html.unescape(s).replace("\xa0", " ")
                spans.append((m.start(), m.end(), decoded.lower(), decoded))
    markup = list(spans)
    contact = _contact_pattern(text)
    for m in contact.finditer(text) if contact is not None else ():
        a, b = m.start(), m.end()
        if any(a < mb and ma < b for ma, mb, _, _ in markup):
            continue
        kind, s = m.lastgroup, m.group(0)
        if kind in ("url", "domain"):
            stripped = s.rstrip(".,;:!?")
            b = a + len(stripped)
            domains.append(domain_of(stripped))
            spans.append((a, b, f"{URL_TOKEN} {domains[-1]}", stripped))
        elif kind == "email":
            n_emails += 1
            spans.append((a, b, " ", s))
        else:
            n_phones += 1
            spans.append((a, b, " ", s))
    return spans, domains, n_emails, n_phones, has_markup


def _contact_pattern(text: str) -> re.Pattern[str] | None:
    """The contact pattern with only the parts that can match in `text` (an e-mail needs "@", a link
    "http(s)://" or "www.", a domain a dot and a top-level domain, a phone nine digits), or None.

    Leaving out a part that cannot match anywhere changes no match: most messages skip the scan.
    """
    parts = (
        "@" in text,
        ("://" in text or "ww." in text.lower()) and _NEEDS_URL.search(text) is not None,  # str tests first: cheaper
        "." in text and _NEEDS_DOMAIN.search(text) is not None,
        sum(map(text.count, "0123456789")) >= 9,  # as many [0-9] as a phone has
    )
    return _contact_variant(parts) if any(parts) else None


@lru_cache(maxsize=16)
def _contact_variant(parts: tuple[bool, ...]) -> re.Pattern[str]:
    return re.compile("|".join(p for p, on in zip(_CONTACT_PARTS, parts, strict=True) if on), re.IGNORECASE)


@lru_cache(maxsize=4096)
def _names_pattern(names: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(n) for n in names) + r")(?!\w)", re.IGNORECASE)


def name_matches(text: str, names: tuple[str, ...]) -> list[tuple[int, int]]:
    """(start, end) of each whole-word, case-insensitive match of one of `names` (earlier names first at a
    position), as `_names_pattern(names).finditer(text)` finds them.

    ASCII text and names (most messages) are searched with str.find on the lower-cased text: the
    pattern's case-insensitive scan tries every position and costs more than the rest of `prepare`.
    """
    if not (text.isascii() and _ascii(names)):
        return [(m.start(), m.end()) for m in _names_pattern(names).finditer(text)]
    low = text.lower()
    found = []
    for rank, name in enumerate(names):
        key = name.lower()
        i = low.find(key)
        while i >= 0:
            j = i + len(key)
            if (i == 0 or not _is_word_char(low[i - 1])) and (j == len(low) or not _is_word_char(low[j])):
                found.append((i, rank, j))
            i = low.find(key, i + 1)
    out: list[tuple[int, int]] = []
    end = 0
    for i, _, j in sorted(found):
        if i >= end:
            out.append((i, j))
            end = j
    return out


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


@lru_cache(maxsize=4096)
def _ascii(names: tuple[str, ...]) -> bool:
    return all(name.isascii() for name in names)


def _fold_name(name: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", name.casefold()) if not unicodedata.combining(c))


@lru_cache(maxsize=1)
def _greeting_rules() -> dict[str, list[str]]:
    """app/rules/greetings.toml: `greetings`, `asking_after`, `with_greeting`, `name_openers`, `not_names`."""
    return tomllib.loads((Path(__file__).with_name("rules") / "greetings.toml").read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def _not_names() -> frozenset[str]:
    """Capitalised words that follow a greeting or sign a message but are no one's name."""
    return frozenset(_greeting_rules()["not_names"])


@lru_cache(maxsize=1)
def _greeting_words() -> tuple[frozenset[str], frozenset[str]]:
    """(greetings, words that only keep a greeting company)."""
    rules = _greeting_rules()
    return frozenset(rules["greetings"] + rules["asking_after"]), frozenset(rules["with_greeting"])


def _openers() -> list[str]:
    """What may open a message before a name: every greeting and form of address, longest first."""
    rules = _greeting_rules()
    return sorted({*rules["greetings"], *rules["name_openers"]}, key=len, reverse=True)


@lru_cache(maxsize=1)
def _greeting_name() -> re.Pattern[str]:
    """A greeting or form of address from greetings.toml, then a capitalised first name (group `name`)."""
    return re.compile(
        r"\W{0,3}(?:" + "|".join(re.escape(w).replace(r"\ ", " ") for w in _openers()) + r")(?<=\w)(?!\w)[ ,!]{0,3}"
        r"(?:(?:mr|mrs|ms|miss|dr|sir|madam|prof|sr|sra)\.? {1,3})?"
        r"(?P<name>[A-ZÀ-Ý][\w'’-]{1,30})",
        re.IGNORECASE,
    )


_WORDISH = re.compile(r"[^\W_]+(?:'[^\W_]+)?")


def _greeted_name(text: str) -> re.Match[str] | None:
    """The greeting and the capitalised first name that opens the text ("Hi Marta, ..."), if any."""
    m = _greeting_name().match(text)
    if not m or m.group("name").lower() in _not_names() or not m.group("name")[0].isupper():
        return None
    return m


# A word every default invitation text has, in the case LinkedIn writes it: most texts skip the pattern.
_DEFAULT_KEYS = (
    "LinkedIn", "network", "red profesional", "rede profissional", "réseau", "Netzwerk", "rete professionale", "netwerk",
)  # fmt: skip


@lru_cache(maxsize=1)
def _linkedin_default() -> re.Pattern[str]:
    """One of LinkedIn's default invitation texts, after an optional greeting and name, before an optional sign-off."""
    defaults = sorted(_greeting_rules()["linkedin_defaults"], key=len, reverse=True)
    name = r"[A-ZÀ-Ý][\w'’.-]{0,30}(?: [A-ZÀ-Ý][\w'’.-]{0,30}){0,3}"  # a sign-off: capitalised words only
    return re.compile(
        r"\s{0,5}(?i:(?:" + "|".join(re.escape(w) for w in _openers()) + r")(?![\w'])[^\n.!?]{0,40}?[,!.]?\s{1,5})?"
        r"(?i:" + "|".join(re.escape(d) for d in defaults) + r")[.!]?"
        r"(?:\s{0,5}(?:[-–—~]\s{0,3})?" + name + r")?\s{0,5}"
    )


def only_greets(text: str) -> bool:
    """The text greets and says nothing else but a name, punctuation and emoji ("hi", "Hello sir 👋",
    "Hi Priya, how are you?"), or is one of LinkedIn's default invitation texts."""
    if len(text) <= 200 and any(k in text for k in _DEFAULT_KEYS) and _linkedin_default().fullmatch(text):
        return True
    if len(text) > 60:
        return False
    greetings, company = _greeting_words()
    words = _WORDISH.findall(text.casefold())
    if not any(w in greetings for w in words):
        return False  # most texts end here, before the name pattern
    if m := _greeted_name(text):
        words = _WORDISH.findall((text[: m.start("name")] + text[m.end("name") :]).casefold())
    return any(w in greetings for w in words) and all(w in greetings or w in company for w in words)


@lru_cache(maxsize=1)
def _reply_rules() -> tuple[int, frozenset[str], frozenset[str]]:
    """app/rules/short_replies.toml: (max length, words that reply, every word a bare reply may have)."""
    rules = tomllib.loads((Path(__file__).with_name("rules") / "short_replies.toml").read_text(encoding="utf-8"))
    replying = frozenset(rules["acknowledgements"] + rules["pings"])
    greetings, company = _greeting_words()
    return int(rules["max_length"]), replying, replying | frozenset(rules["company"]) | greetings | company


def only_replies(text: str) -> bool:
    """The text acknowledges or pings and says nothing else ("ok", "Noted, thanks sir 🙏", "are you there?")."""
    max_length, replying, allowed = _reply_rules()
    if len(text) > max_length:
        return False
    words = _WORDISH.findall(text.casefold())
    return any(w in replying for w in words) and all(w in allowed for w in words)


def says_nothing_alone(text: str) -> bool:
    """A bare greeting or a bare reply: read without its conversation it shows no scheme and no sale."""
    return only_greets(text) or only_replies(text)


def greets_someone_else(item: Item) -> bool:
    """The text opens by greeting a first name that is not the recipient's ("Hi Marta, ..." to Sofia).

    Known only when the recipient's name is (an export gives it): the wrong-number opener
    of scams, and a message meant for someone else.
    """
    if not item.recipient_name:
        return False
    m = _greeted_name(item.text)
    if not m:
        return False
    mine = {_fold_name(part.strip(".")) for part in item.recipient_name.replace(",", " ").split()}
    return _fold_name(m.group("name")) not in mine


def _name_spans(text: str, item: Item) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    names = _known_names(item)
    if names:
        spans += name_matches(text, names)
    if m := _greeted_name(text):
        spans.append((m.start("name"), m.end("name")))
    tail = max(len(text) - 120, 0)  # a sign-off sits at the very end: look only there
    m = _SIGNOFF_NAME.search(text, tail) if "\n" in text[tail:] else None
    if m and m.group("name").split()[0].lower() not in _not_names():
        spans.append((m.start("name"), m.end("name")))
    return spans


def lower(text: str) -> str:
    """Lower case as the model and the lexicons read it: Turkish capital İ lower-cases to i plus a
    combining dot, and "İş" must read as the word "iş"."""
    low = text.lower()
    return low.replace("i\u0307", "i") if "\u0307" in low else low


def _fold(chunk: str) -> str:
    """Lower-case, and fold compatibility forms (bold or full-width letters scammers use) to plain ones."""
    if chunk.isascii():
        return chunk.lower()
    return lower(unicodedata.normalize("NFKC", chunk))


def prepare(item: Item, with_offsets: bool = False) -> Prepared:
    """Normalise an item's text. Offsets back into the received text are always kept (as the parts
    the text was cut into, mapped on demand); `with_offsets` is accepted for older callers."""
    text = item.text
    if only_greets(text):  # "hi", "hello sir": no evidence either way in the words; the conversation decides
        return Prepared(item, text, "", ((0, 0, len(text), KEPT),), (), 0, 0, False)
    spans, domains, n_emails, n_phones, has_markup = _replacements(text)
    taken = [(a, b) for a, b, _, _ in spans]
    for a, b in _name_spans(text, item):
        if not any(a < tb and ta < b for ta, tb in taken):
            spans.append((a, b, NAME_TOKEN, text[a:b]))
            taken.append((a, b))
    if not spans:  # most messages: nothing replaced
        norm = _fold(text)
        return Prepared(item, text, norm, ((0, 0, len(text), KEPT if len(norm) == len(text) else FOLDED),), (), 0, 0, False)
    spans.sort()
    pos = at = 0
    norm_parts: list[str] = []
    raw_parts: list[str] = []
    sources: list[tuple[int, int, int, int]] = []
    for a, b, model_text, readable in spans:
        if a < pos:
            continue
        folded = _fold(text[pos:a])
        norm_parts += [folded, model_text]
        raw_parts += [text[pos:a], readable]
        sources += [(at, pos, a, KEPT if len(folded) == a - pos else FOLDED), (at + len(folded), a, b, REPLACED)]
        at += len(folded) + len(model_text)
        pos = b
    folded = _fold(text[pos:])
    norm_parts.append(folded)
    raw_parts.append(text[pos:])
    sources.append((at, pos, len(text), KEPT if len(folded) == len(text) - pos else FOLDED))
    return Prepared(item, "".join(raw_parts), "".join(norm_parts), tuple(sources), tuple(domains), n_emails, n_phones, has_markup)


def norm_text(prepared: Prepared) -> str:
    """The text the word and character n-gram vectorisers read."""
    return prepared.norm


def thread_text(prepared: Prepared) -> str:
    """The sender's earlier messages in the conversation, folded like the item's own text."""
    return _fold(prepared.item.earlier_text) if prepared.item.earlier_text else ""


def source_spans(prepared: Prepared, start: int, end: int) -> tuple[int, int]:
    """The received-text span behind norm[start:end]."""
    return prepared.start_of(start), prepared.end_of(end - 1)
