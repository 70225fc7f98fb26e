"""Click- and open-tracking tokens and the redirect check (pure).

A click token is ``json ["click", customer_id, store_id, command_id, url, expires_ms]``
sealed (``senders.messages.sealed``) under ``click_secret``; an open token (an email's open pixel)
is
``json ["open", customer_id, store_id, command_id, expires_ms]`` under the same key. The
leading kind and the separate keys keep a token of one kind from passing as another
(unsubscribe tokens are ``senders.messages.unsubscribe``'s, sealed the same way).

Even a validly signed URL is only followed to the store's allowed hosts over http(s): a leaked
key or a host a store has since dropped must not turn the service into an open redirect.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import urlsplit

from pydantic import StrictInt, StrictStr, TypeAdapter

from senders.messages.sealed import seal, unseal
from streams.contract.errors import InvalidRecord
from streams.contract.wire import from_json_as

_KIND: Final[Literal["click"]] = "click"
_OPEN_KIND: Final[Literal["open"]] = "open"
MAX_URL_CHARS: Final = 2048
_UNSAFE: Final = re.compile(r"[\x00-\x20\x7f\\]")  # controls, spaces and backslashes


class ExpiredToken(InvalidRecord):
    """A genuine token past its ``expires_ms``."""


@dataclass(frozen=True, slots=True)
class ClickToken:
    customer_id: str
    store_id: str
    command_id: str
    url: str
    expires_ms: int


# The sealed payloads, as written and read: the kind first, then the token's fields in order.
ClickPayload = tuple[Literal["click"], StrictStr, StrictStr, StrictStr, StrictStr, StrictInt]
OpenPayload = tuple[Literal["open"], StrictStr, StrictStr, StrictStr, StrictInt]
CLICK_PAYLOAD: Final[TypeAdapter[ClickPayload]] = TypeAdapter(ClickPayload)
OPEN_PAYLOAD: Final[TypeAdapter[OpenPayload]] = TypeAdapter(OpenPayload)


def make_click_token(secret: bytes, token: ClickToken) -> str:
    fields: ClickPayload = (
        _KIND, token.customer_id, token.store_id, token.command_id, token.url, token.expires_ms
    )  # fmt: skip
    return seal(secret, CLICK_PAYLOAD.dump_json(fields))


def click_url(base: str, token: str) -> str:
    """The tracking link for ``token`` under the service's public ``/c/`` route."""
    return f"{base.rstrip('/')}/c/{token}"


def read_click_token(secret: bytes, text: str, now_ms: int) -> ClickToken:
    """The token's contents; ``InvalidRecord`` if malformed or forged, ``ExpiredToken`` if old."""
    payload = unseal(secret, text, "click token")
    _, customer_id, store_id, command_id, url, expires_ms = from_json_as(
        CLICK_PAYLOAD, payload, "click token payload is malformed"
    )
    token = ClickToken(customer_id, store_id, command_id, url, expires_ms)
    if token.expires_ms <= now_ms:
        raise ExpiredToken("click token has expired")
    return token


@dataclass(frozen=True, slots=True)
class OpenToken:
    customer_id: str
    store_id: str
    command_id: str
    expires_ms: int


def make_open_token(secret: bytes, token: OpenToken) -> str:
    fields: OpenPayload = (
        _OPEN_KIND, token.customer_id, token.store_id, token.command_id, token.expires_ms
    )  # fmt: skip
    return seal(secret, OPEN_PAYLOAD.dump_json(fields))


def open_url(base: str, token: str) -> str:
    """The open pixel for ``token`` under the service's public ``/o/`` route."""
    return f"{base.rstrip('/')}/o/{token}"


def read_open_token(secret: bytes, text: str, now_ms: int) -> OpenToken:
    """The token's contents; ``InvalidRecord`` if malformed or forged (a click token too),
    ``ExpiredToken`` if old."""
    payload = unseal(secret, text, "open token")
    _, customer_id, store_id, command_id, expires_ms = from_json_as(
        OPEN_PAYLOAD, payload, "open token payload is malformed"
    )
    token = OpenToken(customer_id, store_id, command_id, expires_ms)
    if token.expires_ms <= now_ms:
        raise ExpiredToken("open token has expired")
    return token


def allowed_hosts(hosts: Mapping[str, tuple[str, ...]], store_id: str) -> frozenset[str]:
    """The store's own hosts and those allowed for every store (``"*"``), lower case."""
    return frozenset(h.lower().rstrip(".") for h in (*hosts.get(store_id, ()), *hosts.get("*", ())))


def redirect_target(url: str, allowed: frozenset[str]) -> str:
    """``url`` when it is an absolute http(s) URL on an allowed host; else ``InvalidRecord``.

    Rejects what ``checked_url`` rejects, and any host not in ``allowed``.
    """
    if _host(url) not in allowed:
        raise InvalidRecord("redirect host is not one of the store's allowed hosts")
    return url


def checked_url(url: str) -> str:
    """``url`` when a browser reads it as the parser does; else ``InvalidRecord``.

    Rejects backslashes, controls, spaces, credentials (``https://shop@evil``), and
    scheme-relative or relative URLs.
    """
    _host(url)
    return url


def _host(url: str) -> str:
    """The host of ``url`` in lower case, once ``url`` passes ``checked_url``'s rules."""
    if len(url) > MAX_URL_CHARS or _UNSAFE.search(url):
        raise InvalidRecord("redirect URL holds characters browsers may reinterpret")
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".")
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise InvalidRecord("redirect URL does not parse") from None
    if parts.scheme not in ("https", "http") or not host:
        raise InvalidRecord("redirect URL must be absolute http(s)")
    if parts.username is not None or parts.password is not None:
        raise InvalidRecord("redirect URL may not carry credentials")
    return host.lower()
