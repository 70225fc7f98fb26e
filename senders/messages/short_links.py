"""Short, tracked SMS links (pure): the ids, the rewrite of a body, the record behind an id.

Every ``http(s)://`` URL in an SMS body becomes ``<short_link_base><id>`` (the store's
``short_link_base`` in the flow policy, e.g. ``https://s.shop.example/c/``), at most
``MAX_LINK_CHARS`` characters in all. The id is base62 of HMAC-SHA256 over the command id and
the URL under the click secret: the same command and link always give the same short URL (a
redelivered command is rendered exactly as the first time), and nobody without the key can
derive or guess one. The id resolves server-side: the SMS sender registers a ``LinkRecord``
in Redis before the message can go out (``senders.adapters.short_link_store``), and the webhooks
service looks it up on a click. Nothing here reads a clock or Redis.

A URL's end is found as a reader would: trailing sentence punctuation (``.``, ``,``, ``!``,
``?``, ``:``, ``;``, quotes, a closing bracket) is not part of it. A URL already under the base
is left as it is, so rewriting twice changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import ClassVar, Final

import orjson
from pydantic import BaseModel, StrictInt, StrictStr

from streams.contract.errors import ConfigurationError
from streams.contract.wire import WireRecord, from_json, positional

MAX_LINK_CHARS: Final = 40  # a short URL, base included
MAX_ID_CHARS: Final = 10  # ~59 bits
MIN_ID_CHARS: Final = 8  # ~47 bits: a base may take up to 32 characters
ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SHORT_ID: Final = re.compile(rf"[0-9A-Za-z]{{{MIN_ID_CHARS},{MAX_ID_CHARS}}}")
_URL: Final = re.compile(r"https?://[^\s<>\"]+", re.IGNORECASE)
_TRAILING: Final = ".,;:!?'\")]}"
_DOMAIN: Final = b"cartpulse-short-link\x00"  # keeps these MACs apart from any other use of the key


def id_length(base: str) -> int:
    """How long the ids under ``base`` are: as long as fits in ``MAX_LINK_CHARS``, at most
    ``MAX_ID_CHARS``; ``ConfigurationError`` when not even ``MIN_ID_CHARS`` fit."""
    length = min(MAX_ID_CHARS, MAX_LINK_CHARS - len(base))
    if length < MIN_ID_CHARS:
        raise ConfigurationError(
            f"short_link_base {base!r} is {len(base)} characters: at most "
            f"{MAX_LINK_CHARS - MIN_ID_CHARS} leave room for an id in {MAX_LINK_CHARS}"
        )
    return length


def short_id(secret: bytes, command_id: str, url: str, length: int = MAX_ID_CHARS) -> str:
    """The id of ``url`` in command ``command_id``: ``length`` base62 characters."""
    message = _DOMAIN + orjson.dumps([command_id, url])
    number = int.from_bytes(hmac.new(secret, message, hashlib.sha256).digest(), "big")
    chars = []
    for _ in range(length):
        number, digit = divmod(number, len(ALPHABET))
        chars.append(ALPHABET[digit])
    return "".join(chars)


def is_short_id(text: str) -> bool:
    """Whether ``text`` has the shape of an id (a sealed click token never has)."""
    return SHORT_ID.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class ShortLink:
    """One link of a message: ``url`` is shown as ``short_url`` and resolves by ``link_id``."""

    link_id: str
    url: str
    short_url: str


@dataclass(frozen=True, slots=True)
class Shortener:
    """Rewrites the URLs of SMS bodies under one store's ``base``."""

    base: str
    secret: bytes

    def __post_init__(self) -> None:
        if not self.secret:
            raise ConfigurationError("short links need a key (CARTPULSE_CLICK_SECRET)")
        id_length(self.base)

    def shorten(self, text: str, command_id: str) -> tuple[str, tuple[ShortLink, ...]]:
        """``text`` with every URL replaced by its short URL, and the links, each once, in
        order of first appearance. A text without URLs comes back unchanged."""
        length = id_length(self.base)
        links: dict[str, ShortLink] = {}

        def replace(match: re.Match[str]) -> str:
            url, tail = _split_tail(match.group(0))
            if not _is_link(url) or url.startswith(self.base):
                return match.group(0)
            link = links.get(url)
            if link is None:
                link_id = short_id(self.secret, command_id, url, length)
                link = links[url] = ShortLink(link_id, url, f"{self.base}{link_id}")
            return link.short_url + tail

        return _URL.sub(replace, text), tuple(links.values())


def _split_tail(found: str) -> tuple[str, str]:
    """The URL and the punctuation after it that ends the sentence, not the URL."""
    url = found
    while url and url[-1] in _TRAILING:
        # A closing bracket belongs to the URL when the URL opened it (a Wikipedia-style path).
        if url[-1] == ")" and url.count("(") >= url.count(")"):
            break
        url = url[:-1]
    return url, found[len(url) :]


def _is_link(url: str) -> bool:
    """An absolute URL with a host (``https://`` alone, or ``https://.``, is text)."""
    rest = url.split("://", 1)[1]
    host = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    return any(ch.isalnum() for ch in host)


class LinkRecord(WireRecord):
    """What an id resolves to; stored as JSON under the id until ``expires_ms`` (and a grace
    period after it, so a late click is told the link expired rather than that it never was)."""

    REASONS: ClassVar = dict.fromkeys(
        ("url", "customer_id", "store_id", "command_id", "channel", "expires_ms"),
        "short link record is malformed",
    )

    url: StrictStr
    customer_id: StrictStr
    store_id: StrictStr
    command_id: StrictStr
    channel: StrictStr
    expires_ms: StrictInt

    @positional
    def __init__(
        self,
        url: str,
        customer_id: str,
        store_id: str,
        command_id: str,
        channel: str,
        expires_ms: int,
    ) -> None:
        BaseModel.__init__(  # the fields' own validation; see ``positional``
            self,
            url=url,
            customer_id=customer_id,
            store_id=store_id,
            command_id=command_id,
            channel=channel,
            expires_ms=expires_ms,
        )

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> LinkRecord:
        """The record; ``InvalidRecord`` when ``raw`` is not one."""
        return from_json(cls, raw, "short link record")

    def same_link(self, other: LinkRecord) -> bool:
        """Whether ``other`` registers the same link (its expiry may differ: a redelivery)."""
        return (self.url, self.command_id, self.customer_id) == (
            other.url,
            other.command_id,
            other.customer_id,
        )
