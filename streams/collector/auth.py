"""Who sent a request: a store's bearer token, its HMAC-SHA256 signature of the body, or its
public pixel key (browsers). Pure: headers, query and body in, a store id or ``Refused`` out.

Every secret comparison is constant-time (``hmac.compare_digest``), and a bearer token is
compared with every store's token, so the time taken does not tell which store came closest.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from streams.contract.errors import CartpulseError

SIGNATURE_HEADER: Final = "X-Cartpulse-Signature"
STORE_HEADER: Final = "X-Cartpulse-Store"
SIGNATURE_PREFIX: Final = "sha256="


class Refused(CartpulseError):
    """The request proves no store (401): ``reason`` says what to send instead."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Credentials:
    """Per-store secrets (bearer token and HMAC key alike) and public pixel keys."""

    secrets: Mapping[str, bytes] = field(default_factory=dict)
    pixel_keys: Mapping[str, bytes] = field(default_factory=dict)
    allowed_origins: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Caller:
    """What a request says about its sender: its headers' and query's values, as sent."""

    authorization: str | None = None
    signature: str | None = None
    store: str | None = None
    pixel_key: str | None = None
    origin: str | None = None


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-Cartpulse-Signature`` value of ``body`` under ``secret``."""
    return SIGNATURE_PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def authenticate(credentials: Credentials, caller: Caller, body: bytes) -> str:
    """The store ``caller`` proves to be, or ``Refused``.

    In order: a signature (needs ``X-Cartpulse-Store``: it names the key), a bearer token, a
    pixel key (``?store=&key=``; only from an allowed ``Origin``: it is public in the page).
    """
    if caller.signature is not None:
        return _by_signature(credentials, caller, body)
    if caller.authorization is not None:
        return _by_token(credentials, caller.authorization)
    if caller.pixel_key is not None:
        return _by_pixel_key(credentials, caller)
    raise Refused(
        "send Authorization: Bearer <token>, or X-Cartpulse-Store with X-Cartpulse-Signature: "
        "sha256=<hex HMAC-SHA256 of the body>, or a pixel's ?store=&key="
    )


def _by_signature(credentials: Credentials, caller: Caller, body: bytes) -> str:
    store = caller.store
    if not store:
        raise Refused(f"a signed request names its store in {STORE_HEADER}")
    secret = credentials.secrets.get(store)
    # An unknown store is checked against a dummy key: the same work, the same answer.
    expected = sign(secret if secret is not None else b"\x00" * 32, body)
    given = (caller.signature or "").strip().lower()
    if not hmac.compare_digest(expected.encode(), given.encode()) or secret is None:
        raise Refused(f"{SIGNATURE_HEADER} does not match the body under {store}'s secret")
    return store


def _by_token(credentials: Credentials, authorization: str) -> str:
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Refused("Authorization must be 'Bearer <token>'")
    given = token.strip().encode()
    found: str | None = None
    for store, secret in credentials.secrets.items():  # every one: no early exit
        if hmac.compare_digest(secret, given) and found is None:
            found = store
    if found is None:
        raise Refused("the bearer token is not any store's")
    return found


def _by_pixel_key(credentials: Credentials, caller: Caller) -> str:
    store = caller.store or ""
    key = credentials.pixel_keys.get(store)
    given = (caller.pixel_key or "").encode()
    if key is None or not hmac.compare_digest(key, given):
        raise Refused("the pixel key is not this store's")
    if caller.origin is None or caller.origin not in credentials.allowed_origins:
        raise Refused("a pixel key is only taken from an origin in the allowed origins")
    return store
