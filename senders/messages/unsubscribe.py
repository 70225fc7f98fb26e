"""Signed, expiring unsubscribe tokens and the RFC 8058 headers built from them (pure).

A token is ``json [customer_id, channel, store_id, expires_ms]`` sealed
(``senders.messages.sealed``)
under ``unsubscribe_secret``. The webhooks service verifies it with ``read_token`` for both
one-click ``POST`` and the ``mailto`` path.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

from pydantic import StrictInt, StrictStr, TypeAdapter

from senders.messages.sealed import seal, unseal
from streams.contract.errors import InvalidRecord
from streams.contract.wire import from_json_as


@dataclass(frozen=True, slots=True)
class UnsubscribeToken:
    customer_id: str
    channel: str
    store_id: str
    expires_ms: int


# The sealed payload, as written and read: [customer_id, channel, store_id, expires_ms].
Payload = tuple[StrictStr, StrictStr, StrictStr, StrictInt]
PAYLOAD: Final[TypeAdapter[Payload]] = TypeAdapter(Payload)


def make_token(secret: bytes, token: UnsubscribeToken) -> str:
    fields = (token.customer_id, token.channel, token.store_id, token.expires_ms)
    return seal(secret, PAYLOAD.dump_json(fields))


def read_token(secret: bytes, text: str, now_ms: int) -> UnsubscribeToken:
    """The token's contents; ``InvalidRecord`` when it is malformed, forged or expired."""
    payload = unseal(secret, text, "unsubscribe token")
    fields = from_json_as(PAYLOAD, payload, "unsubscribe token payload is malformed")
    token = UnsubscribeToken(*fields)
    if token.expires_ms <= now_ms:
        raise InvalidRecord("unsubscribe token has expired")
    return token


def token_id(token: str) -> str:
    """A token's short name in the consent history: the first 32 hex digits of its SHA-256,
    the same for every copy of the link it was sent in."""
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def unsubscribe_url(base: str, token: str) -> str:
    return f"{base}{'&' if '?' in base else '?'}token={token}"


def unsubscribe_mailto(address: str, token: str) -> str:
    return f"mailto:{address}?subject={quote('unsubscribe ' + token)}"


def list_unsubscribe(https_url: str, mailto_url: str) -> dict[str, str]:
    """RFC 2369 + RFC 8058 headers: one-click over https, mailto as the fallback."""
    return {
        "List-Unsubscribe": f"<{https_url}>, <{mailto_url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
