"""Allow and deny lists, applied before the model.

The lists live in a JSON settings file (`TRIAGE_LISTS_FILE`):

    {"allow": {"profile_urls": [], "names": [], "companies": [], "domains": [], "keywords": []},
     "deny":  {"profile_urls": [], "names": [], "companies": [], "domains": [], "keywords": []}}

Every key is optional. Matching is case-insensitive:

- `profile_urls`: the sender's profile URL (scheme, `www.`, country subdomain, query and
  trailing slash ignored),
- `names`: the sender's full name (spacing ignored),
- `companies`: the sender's company, or the company named as whole words in the headline,
- `domains`: a link or an e-mail address in the text on that domain or a subdomain of it,
- `keywords`: a word or phrase, as whole words, in the text.

A match decides the verdict outright: allow means genuine, deny means spam. When both
lists match, allow wins (it is the more specific, deliberate choice of the user) and both
matches are given as reasons.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from app.items import Item
from app.model import LABELS, Reason, Span, Verdict
from app.text import prepare

LIST_NAMES = ("allow", "deny")
LIST_KEYS = ("profile_urls", "names", "companies", "domains", "keywords")
LIST_VERDICT = {"allow": "genuine", "deny": "spam"}
KIND_TEXT = {
    "profile_urls": "profile URL",
    "names": "name",
    "companies": "company",
    "domains": "domain",
    "keywords": "keyword",
}
_EMAIL_DOMAIN = re.compile(r"[\w.+-]+@([\w-]+(?:\.[\w-]+)+)")


class ListsError(ValueError):
    """A lists file that cannot be used; the message names the file and the key."""


def normalise_profile_url(url: str) -> str:
    """'https://uk.linkedin.com/in/Jane-Doe/?trk=x' -> 'linkedin.com/in/jane-doe'."""
    text = url.strip()
    if "://" not in text:
        text = "//" + text
    try:
        parts = urlsplit(text)
    except ValueError:
        return url.strip().lower()
    host = (parts.hostname or "").lower().removeprefix("www.")
    if host.endswith(".linkedin.com"):
        host = "linkedin.com"
    path = unquote(parts.path).rstrip("/").lower()
    return host + path


def normalise_name(name: str) -> str:
    return " ".join(name.casefold().split())


def _phrase_regex(phrases: Iterable[str]) -> re.Pattern[str] | None:
    ordered = sorted({p.casefold().strip() for p in phrases if p.strip()}, key=len, reverse=True)
    if not ordered:
        return None
    body = "|".join(r"\s+".join(re.escape(w) for w in p.split()) for p in ordered)
    return re.compile(rf"(?<!\w)(?:{body})(?!\w)", re.IGNORECASE)


@dataclass(frozen=True)
class ListEntries:
    """One list (allow or deny), normalised for matching."""

    profile_urls: frozenset[str] = frozenset()
    names: frozenset[str] = frozenset()
    companies: frozenset[str] = frozenset()
    domains: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()

    @cached_property
    def company_rx(self) -> re.Pattern[str] | None:
        return _phrase_regex(self.companies)

    @cached_property
    def keyword_rx(self) -> re.Pattern[str] | None:
        return _phrase_regex(self.keywords)

    @property
    def size(self) -> int:
        return len(self.profile_urls) + len(self.names) + len(self.companies) + len(self.domains) + len(self.keywords)

    @classmethod
    def build(cls, values: dict[str, list[str]]) -> ListEntries:
        return cls(
            profile_urls=frozenset(normalise_profile_url(u) for u in values.get("profile_urls", [])),
            names=frozenset(normalise_name(n) for n in values.get("names", [])),
            companies=frozenset(normalise_name(c) for c in values.get("companies", [])),
            domains=tuple(sorted({d.strip().lower().removeprefix("www.").strip(".") for d in values.get("domains", [])})),
            keywords=tuple(sorted({k.strip() for k in values.get("keywords", [])})),
        )


@dataclass(frozen=True)
class ListMatch:
    """Why an item matched a list: which list, which kind of entry, which entry."""

    list_name: str
    kind: str
    entry: str
    spans: tuple[Span, ...] = ()

    @property
    def feature(self) -> str:
        return f"list:{self.list_name}:{self.kind}"

    @property
    def description(self) -> str:
        what = KIND_TEXT[self.kind]
        if self.kind == "keywords":
            return f"the text contains '{self.entry}', a keyword on your {self.list_name} list"
        if self.kind == "domains":
            return f"the text links to {self.entry}, a domain on your {self.list_name} list"
        return f"sender is on your {self.list_name} list ({what} '{self.entry}')"


@dataclass(frozen=True)
class Lists:
    allow: ListEntries = ListEntries()
    deny: ListEntries = ListEntries()
    source: str | None = None

    @property
    def empty(self) -> bool:
        return self.allow.size == 0 and self.deny.size == 0

    def summary(self) -> dict[str, Any]:
        return {
            "source": self.source,
            **{name: {k: len(getattr(getattr(self, name), k)) for k in LIST_KEYS} for name in LIST_NAMES},
        }

    def match(self, item: Item) -> list[ListMatch]:
        """Every match, allow list first; empty when nothing matched."""
        if self.empty:
            return []
        domains: list[str] | None = None
        out: list[ListMatch] = []
        for name in LIST_NAMES:
            entries: ListEntries = getattr(self, name)
            if entries.size == 0:
                continue
            if entries.domains and domains is None:
                domains = _text_domains(item)
            out += _match_one(name, entries, item, domains or [])
        return out


def _text_domains(item: Item) -> list[str]:
    found = list(prepare(item).domains)
    found += [m.group(1).lower() for m in _EMAIL_DOMAIN.finditer(item.text)]
    return [d.removeprefix("www.") for d in found]


def _spans(text: str, rx: re.Pattern[str] | None, limit: int = 5) -> tuple[Span, ...]:
    if rx is None:
        return ()
    return tuple(Span(m.start(), m.end(), m.group(0)) for _, m in zip(range(limit), rx.finditer(text), strict=False))


def _match_one(name: str, entries: ListEntries, item: Item, domains: list[str]) -> list[ListMatch]:
    out: list[ListMatch] = []
    if item.sender_profile_url and entries.profile_urls:
        url = normalise_profile_url(item.sender_profile_url)
        if url in entries.profile_urls:
            out.append(ListMatch(name, "profile_urls", url))
    if item.sender_name and normalise_name(item.sender_name) in entries.names:
        out.append(ListMatch(name, "names", item.sender_name.strip()))
    if entries.companies:
        company_rx = entries.company_rx
        if item.sender_company and normalise_name(item.sender_company) in entries.companies:
            out.append(ListMatch(name, "companies", item.sender_company.strip()))
        elif item.sender_headline and company_rx is not None:
            m = company_rx.search(item.sender_headline)
            if m:
                out.append(ListMatch(name, "companies", m.group(0)))
    for domain in entries.domains:
        if any(d == domain or d.endswith("." + domain) for d in domains):
            rx = re.compile(rf"(?<![\w-]){re.escape(domain)}(?![\w-])", re.IGNORECASE)
            out.append(ListMatch(name, "domains", domain, _spans(item.text, rx)))
    keyword_rx = entries.keyword_rx
    if keyword_rx is not None:
        spans = _spans(item.text, keyword_rx)
        for word in dict.fromkeys(s.text.casefold() for s in spans):
            out.append(ListMatch(name, "keywords", word, tuple(s for s in spans if s.text.casefold() == word)))
    return out


def list_verdict(matches: list[ListMatch], model_version: str) -> Verdict:
    """The verdict a list match decides: allow -> genuine, deny -> spam, allow winning a tie."""
    winner = "allow" if any(m.list_name == "allow" for m in matches) else "deny"
    label = LIST_VERDICT[winner]
    ordered = sorted(matches, key=lambda m: m.list_name != winner)
    reasons = tuple(Reason(m.feature, 1.0, m.description, m.spans) for m in ordered)
    first = ordered[0].description
    summary = f"Marked {('genuine' if label == 'genuine' else 'spam')}: {first}."
    return Verdict(
        verdict=label,
        confidence=1.0,
        scores={lab: 1.0 if lab == label else 0.0 for lab in LABELS},
        needs_review=False,
        reasons=reasons,
        summary=summary,
        model_version=model_version,
        source=f"{winner}_list",
    )


def parse_lists(data: Any, source: str = "lists") -> Lists:
    """Lists from the parsed JSON; raises ListsError naming the key that is wrong."""
    if not isinstance(data, dict):
        raise ListsError(f"{source}: expected a JSON object with 'allow' and/or 'deny'")
    unknown = sorted(set(data) - set(LIST_NAMES))
    if unknown:
        raise ListsError(f"{source}: unknown key {unknown[0]!r}; expected 'allow' and/or 'deny'")
    built: dict[str, ListEntries] = {}
    for name in LIST_NAMES:
        section = data.get(name, {})
        if not isinstance(section, dict):
            raise ListsError(f"{source}: {name}: expected an object with keys {list(LIST_KEYS)}")
        bad = sorted(set(section) - set(LIST_KEYS))
        if bad:
            raise ListsError(f"{source}: {name}.{bad[0]}: unknown key; expected one of {list(LIST_KEYS)}")
        values: dict[str, list[str]] = {}
        for key in LIST_KEYS:
            entries = section.get(key, [])
            if not isinstance(entries, list):
                raise ListsError(f"{source}: {name}.{key}: expected a list of strings")
            for i, entry in enumerate(entries):
                if not isinstance(entry, str) or not entry.strip():
                    raise ListsError(f"{source}: {name}.{key}[{i}]: expected a non-empty string, got {entry!r}")
            values[key] = entries
        built[name] = ListEntries.build(values)
    return Lists(built["allow"], built["deny"], source)


def load_lists(path: Path | None) -> Lists:
    """Lists from a JSON file; no path means empty lists. Raises ListsError with the reason."""
    if path is None:
        return Lists()
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ListsError(f"lists file {path} does not exist (TRIAGE_LISTS_FILE)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ListsError(f"cannot read lists file {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ListsError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    return parse_lists(data, str(path))
