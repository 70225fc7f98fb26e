"""Raw storefront events for the tests: one valid record, changed field by field."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

import orjson

CART_ITEM_ADDED: Final[Mapping[str, object]] = {
    "event_id": "e1",
    "type": "cart_item_added",
    "occurred_at": "2019-10-01T00:00:00Z",
    "session_id": "s1",
    "product": {"id": "p1", "price": "2.50"},
}


def cart_event(**changes: object) -> bytes:
    """A valid ``cart_item_added`` event as JSON, with ``changes`` on top (a ``None`` is kept
    as ``null``: the way to write a field that is there but empty)."""
    return orjson.dumps({**CART_ITEM_ADDED, **changes})


def write_jsonl(path: Path, lines: list[bytes]) -> Path:
    """``lines`` as a JSON Lines file at ``path``; returns ``path``."""
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def write_views(path: Path, count: int) -> Path:
    """``count`` page views with the ids ``v0``, ``v1``, …"""
    path.write_bytes(
        b"".join(
            orjson.dumps(
                {
                    "event_id": f"v{n}",
                    "type": "page_viewed",
                    "occurred_at": 1_569_888_000_000 + n,
                    "session_id": f"s{n % 97}",
                }
            )
            + b"\n"
            for n in range(count)
        )
    )
    return path
