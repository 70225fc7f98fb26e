"""Pseudonyms: what cartpulse keeps of a person after an erasure, and the one rule for each.

An erased customer is known afterwards only by ``customer`` (their *subject*), an opted-out
address only by ``address`` (the suppression list's hash, the same rule as the
``address_hash`` of ``consents.history``, which also keeps every customer only by ``customer``:
docs/compliance.md, Consent history). Both are HMAC-SHA256 under
``CARTPULSE_ADDRESS_HASH_KEY`` when it is set, and plain SHA-256 otherwise: a plain hash of a
phone number or of a numbered customer id is reversed by trying them all, so a deployment that
keeps erasures sets the key (and keeps it: with another key no pseudonym matches again, and an
erased customer's records would be taken again in a replay). Pure: no I/O.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from streams.runtime.settings import Settings

SUBJECT_PREFIX = "sub-"
CACHED_CUSTOMERS: Final = 100_000  # pseudonyms a ``cached_customer`` keeps (about 18 MB when full)


@dataclass(frozen=True, slots=True)
class AddressHasher:
    """How an address becomes a hash: trimmed and lower-cased, then HMAC-SHA256 under ``key``,
    or plain SHA-256 when there is no key (prefixed ``sha256:``, so a record says which it
    is)."""

    key: bytes = b""

    def digest(self, address: str) -> str:
        normal = address.strip().lower().encode()
        if self.key:
            return "hmac-sha256:" + hmac.new(self.key, normal, hashlib.sha256).hexdigest()
        return "sha256:" + hashlib.sha256(normal).hexdigest()


@dataclass(frozen=True, slots=True)
class Pseudonyms:
    """The deployment's pseudonyms, under one key (empty: plain SHA-256)."""

    key: bytes = b""

    @classmethod
    def of(cls, settings: Settings) -> Pseudonyms:
        return cls(settings.address_hash_key.get_secret_value().encode())

    def customer(self, customer_id: str) -> str:
        """``sub-`` and 32 hex digits: a customer id as the erasure records keep it. Ids are
        taken as they are (case and spaces count), unlike addresses."""
        text = b"customer\x00" + customer_id.encode()
        if self.key:
            digest = hmac.new(self.key, text, hashlib.sha256).hexdigest()
        else:
            digest = hashlib.sha256(text).hexdigest()
        return SUBJECT_PREFIX + digest[:32]

    def address(self, address: str) -> str:
        """An address (phone number, email) as the suppression list and ``consents.history``
        keep it: trimmed and lower-cased, then hashed, with the name of its hash in front."""
        return AddressHasher(self.key).digest(address)


def cached_customer(
    pseudonyms: Pseudonyms, maxsize: int = CACHED_CUSTOMERS
) -> Callable[[str], str]:
    """``pseudonyms.customer`` behind a bounded LRU cache: a pseudonym is a pure function of the
    id (under one key), so a cached one never goes stale, and a hot path that asks for an active
    customer's pseudonym on every record hashes each id once rather than each time."""
    return functools.lru_cache(maxsize=maxsize)(pseudonyms.customer)
