"""Signed payloads for links (pure): ``base64url(payload) "." base64url(mac)``.

``mac`` is the first 16 bytes of HMAC-SHA256 of the payload under a secret. Unsubscribe tokens
(``senders.messages.unsubscribe``) and click tokens (``senders.messages.tokens``) are both sealed
this
way, each under its own secret.
"""

from __future__ import annotations

import base64
import hmac
from hashlib import sha256
from typing import Final

from streams.contract.errors import InvalidRecord

MAC_BYTES: Final = 16


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, payload, sha256).digest()[:MAC_BYTES]


def seal(secret: bytes, payload: bytes) -> str:
    return f"{_b64(payload)}.{_b64(_mac(secret, payload))}"


def unseal(secret: bytes, text: str, what: str) -> bytes:
    """The payload ``text`` carries. ``InvalidRecord`` (its reason naming ``what``) when
    ``text`` is malformed or its MAC does not match; an empty ``secret`` never matches."""
    payload_b64, dot, mac_b64 = text.partition(".")
    if not dot or not secret:
        raise InvalidRecord(f"{what} is malformed")
    try:
        payload, mac = _unb64(payload_b64), _unb64(mac_b64)
    except ValueError:  # binascii.Error, or a character outside ASCII
        raise InvalidRecord(f"{what} is not base64url") from None
    if not hmac.compare_digest(mac, _mac(secret, payload)):
        raise InvalidRecord(f"{what} signature does not match")
    return payload
