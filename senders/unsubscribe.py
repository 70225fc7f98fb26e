"""Signed, expiring unsubscribe tokens and the RFC 8058 headers built from them (pure).

A token is ``base64url(json [customer_id, channel, store_id, expires_ms]) "." base64url(mac)``
with ``mac`` the first 16 bytes of HMAC-SHA256 under ``unsubscribe_secret``. The webhooks
service verifies it with ``read_token`` for both one-click ``POST`` and the ``mailto`` path.
"""

from __future__ import annotations

import base64
import hmac
from dataclasses import dataclass
from hashlib import sha256
from urllib.parse import quote

import orjson

from streams.errors import InvalidRecord

_MAC_BYTES = 16


@dataclass(frozen=True, slots=True)
class UnsubscribeToken:
    customer_id: str
    channel: str
    store_id: str
    expires_ms: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(secret: bytes, token: UnsubscribeToken) -> str:
    payload = orjson.dumps([token.customer_id, token.channel, token.store_id, token.expires_ms])
    mac = hmac.new(secret, payload, sha256).digest()[:_MAC_BYTES]
    return f"{_b64(payload)}.{_b64(mac)}"


def read_token(secret: bytes, text: str, now_ms: int) -> UnsubscribeToken:
    """The token's contents; ``InvalidRecord`` when it is malformed, forged or expired."""
    payload_b64, dot, mac_b64 = text.partition(".")
    try:
        payload, mac = _unb64(payload_b64), _unb64(mac_b64)
    except ValueError:
        raise InvalidRecord("unsubscribe token is not base64url") from None
    expected = hmac.new(secret, payload, sha256).digest()[:_MAC_BYTES]
    if not dot or not hmac.compare_digest(mac, expected):
        raise InvalidRecord("unsubscribe token signature does not match")
    try:
        customer_id, channel, store_id, expires_ms = orjson.loads(payload)
    except (orjson.JSONDecodeError, ValueError, TypeError):
        raise InvalidRecord("unsubscribe token payload is malformed") from None
    if not isinstance(expires_ms, int) or expires_ms <= now_ms:
        raise InvalidRecord("unsubscribe token has expired")
    return UnsubscribeToken(str(customer_id), str(channel), str(store_id), expires_ms)


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
