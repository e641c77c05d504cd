"""Who the account owner of a LinkedIn export is: given with `me`, or inferred from messages.csv.

The owner is the identity present in the most conversations (by profile URL when the export
has recipient URLs, else by name); the names and URLs used with it are its aliases.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from app.items import ANONYMOUS_SENDERS


def normalise_url(url: str | None) -> str:
    """A profile URL without scheme, 'www.', query or trailing slash, lower-cased."""
    text = (url or "").strip().lower()
    text = re.sub(r"^[a-z]+://", "", text)
    text = re.sub(r"^www\.", "", text)
    return re.split(r"[?#]", text, maxsplit=1)[0].rstrip("/")


def name_key(name: str | None) -> str:
    return " ".join(html.unescape(name or "").split()).casefold()


def is_url(value: str) -> bool:
    low = value.strip().lower()
    return low.startswith(("http://", "https://", "www.")) or "linkedin.com/" in low or "/in/" in low


@dataclass
class Owner:
    """The account owner: the names and profile URLs that mean 'me' in the export."""

    names: set[str]
    urls: set[str]
    display: str
    how: str

    @classmethod
    def from_me(cls, me: str) -> Owner:
        if is_url(me):
            return cls(set(), {normalise_url(me)}, me.strip(), "given with --me")
        return cls({name_key(me)}, set(), me.strip(), "given with --me")

    def matches(self, name: str | None, url: str | None) -> bool:
        if url and url.strip() and self.urls:
            return normalise_url(url) in self.urls
        key = name_key(name)
        return bool(key) and key not in ANONYMOUS_SENDERS and key in self.names


class OwnerEvidence:
    """Counts gathered in one pass over messages.csv to find who the owner is."""

    def __init__(self) -> None:
        self.conversations: Counter[tuple[str, str]] = Counter()  # identity -> conversations it is in
        self.as_recipient: Counter[tuple[str, str]] = Counter()
        self.url_names: Counter[tuple[str, str]] = Counter()  # (url, name) seen together as sender
        self.single_recipient: Counter[tuple[str, str]] = Counter()  # (url, to-name) for one-recipient rows
        self.display: dict[str, str] = {}
        self.has_recipient_urls = False
        self._block: set[tuple[str, str]] = set()

    def _name(self, name: str) -> tuple[str, str] | None:
        key = name_key(name)
        if not key or key in ANONYMOUS_SENDERS:
            return None
        self.display.setdefault(key, " ".join(html.unescape(name).split()))
        return ("name", key)

    def add_row(self, row: Mapping[str, str]) -> None:
        sender_name, sender_url = row.get("from", ""), normalise_url(row.get("sender profile url"))
        to = row.get("to", "")
        urls = [normalise_url(u) for u in (row.get("recipient profile urls") or "").split(",") if u.strip()]
        if urls:
            self.has_recipient_urls = True
        ids: set[tuple[str, str]] = set()
        recipients: set[tuple[str, str]] = set()
        if sender_url:
            ids.add(("url", sender_url))
            key = name_key(sender_name)
            if key and key not in ANONYMOUS_SENDERS:
                self.url_names[(sender_url, key)] += 1
        if (n := self._name(sender_name)) is not None:
            ids.add(n)
        for part in {to, *to.split(", ")}:
            if (n := self._name(part)) is not None:
                recipients.add(n)
        recipients.update(("url", u) for u in urls)
        if len(urls) == 1 and (n := self._name(to)) is not None:
            self.single_recipient[(urls[0], n[1])] += 1
        self._block |= ids | recipients
        self.as_recipient.update(recipients)

    def end_conversation(self) -> None:
        self.conversations.update(self._block)
        self._block = set()

    def owner(self) -> Owner | None:
        self.end_conversation()
        kind = "url" if self.has_recipient_urls else "name"
        candidates = [(n, self.as_recipient[i], i) for i, n in self.conversations.items() if i[0] == kind]
        if not candidates:
            return None
        candidates.sort(key=lambda c: (-c[0], -c[1], c[2]))
        n_conv, _, (_, value) = candidates[0]
        how = f"inferred from messages: in {n_conv} conversation{'s' if n_conv != 1 else ''}"
        if len(candidates) > 1 and candidates[1][:2] == candidates[0][:2]:
            how += " (a tie: pass --me to be sure)"
        if kind == "url":
            names = {name for (url, name) in self.url_names if url == value}
            names |= {name for (url, name) in self.single_recipient if url == value}
            shown = max(names, key=lambda k: self.url_names[(value, k)] + self.single_recipient[(value, k)], default=None)
            return Owner(names, {value}, self.display.get(shown, value) if shown else value, how)
        urls = {url for (url, name) in self.url_names if name == value}
        return Owner({value}, urls, self.display.get(value, value), how)

    def aliases_for(self, owner: Owner) -> None:
        """Add the names used with the owner's URLs and the URLs used with the owner's names."""
        for url, name in list(self.url_names) + list(self.single_recipient):
            if url in owner.urls:
                owner.names.add(name)
        if not owner.urls:
            owner.urls.update(url for url, name in self.url_names if name in owner.names)
