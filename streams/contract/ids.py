"""Stable ids: a prefix and a BLAKE2b digest of the parts, so a repeat carries the same id."""

from __future__ import annotations

import hashlib


def stable_id(prefix: str, digest_size: int, *parts: object) -> str:
    """``<prefix>-<hex>`` of BLAKE2b(``parts`` joined by NUL) with ``digest_size`` bytes."""
    joined = "\x00".join(map(str, parts)).encode()
    return f"{prefix}-{hashlib.blake2b(joined, digest_size=digest_size).hexdigest()}"
