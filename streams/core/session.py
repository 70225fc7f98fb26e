"""Per-session detection state and its compact, versioned serialisation.

A session holds the cart (which persists across activity periods), the open period's facts,
the ids of recent events (for de-duplication) and events that arrived ahead of the watermark.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from streams.errors import InvalidRecord
from streams.models.abandonment import ViewedProduct
from streams.models.event_parse import event_from_dict
from streams.models.events import Event

STATE_VERSION = 1


class CartLine:
    __slots__ = ("currency", "image_url", "name", "price", "product_id", "quantity", "url")

    def __init__(
        self,
        product_id: str,
        quantity: int,
        price: Decimal | None = None,
        name: str | None = None,
        url: str | None = None,
        image_url: str | None = None,
        currency: str | None = None,
    ) -> None:
        self.product_id = product_id
        self.quantity = quantity
        self.price = price
        self.name = name
        self.url = url
        self.image_url = image_url
        self.currency = currency


class SessionState:
    """Everything the detector keeps for one ``session_id``.

    ``last_ms`` is None while no period is open. ``viewed`` is ordered least to most recent.
    ``pending`` holds ``(time, seq, event)`` of events ahead of the watermark, sorted.
    ``index_due`` is the due time of this session's live entry in the deadline index.
    """

    __slots__ = (
        "cart",
        "cart_url",
        "checkout",
        "closed_deadline",
        "customer_id",
        "index_due",
        "last_ms",
        "last_seen_ms",
        "ordered",
        "pending",
        "seen",
        "session_id",
        "store_id",
        "viewed",
        "views",
    )

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.customer_id: str | None = None
        self.store_id: str | None = None
        self.cart: dict[str, CartLine] = {}
        self.cart_url: str | None = None
        self.last_ms: int | None = None
        self.closed_deadline: int | None = None
        self.last_seen_ms = 0
        self.ordered = False
        self.checkout = False
        self.views = 0
        self.viewed: dict[str, ViewedProduct] = {}
        self.seen: dict[str, int] = {}
        self.pending: list[tuple[int, int, Event]] = []
        self.index_due: int | None = None

    # -- serialisation (the table value) -------------------------------------------------

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "v": STATE_VERSION,
                "s": self.session_id,
                "c": self.customer_id,
                "st": self.store_id,
                "cart": [
                    [
                        line.product_id,
                        line.quantity,
                        _dec(line.price),
                        line.name,
                        line.url,
                        line.image_url,
                        line.currency,
                    ]
                    for line in self.cart.values()
                ],
                "cu": self.cart_url,
                "l": self.last_ms,
                "cd": self.closed_deadline,
                "ls": self.last_seen_ms,
                "o": self.ordered,
                "co": self.checkout,
                "vn": self.views,
                "vw": [
                    [v.product_id, v.views, _dec(v.price), v.name, v.url]
                    for v in self.viewed.values()
                ],
                "seen": self.seen,
                "p": [
                    [t, seq, event.to_dict() if event.raw is None else orjson.Fragment(event.raw)]
                    for t, seq, event in self.pending
                ],
            }
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> SessionState:
        """Inverse of ``to_bytes``; raises ``InvalidRecord`` for a value it cannot read."""
        try:
            data: dict[str, Any] = orjson.loads(raw)
            if data.get("v") != STATE_VERSION:
                raise InvalidRecord(f"session state version {data.get('v')!r} is not supported")
            state = cls(data["s"])
            state.customer_id = data["c"]
            state.store_id = data["st"]
            for pid, qty, price, name, url, image, currency in data["cart"]:
                state.cart[pid] = CartLine(pid, qty, _undec(price), name, url, image, currency)
            state.cart_url = data["cu"]
            state.last_ms = data["l"]
            state.closed_deadline = data["cd"]
            state.last_seen_ms = data["ls"]
            state.ordered = data["o"]
            state.checkout = data["co"]
            state.views = data["vn"]
            for pid, views, price, name, url in data["vw"]:
                state.viewed[pid] = ViewedProduct(pid, views, _undec(price), name, url)
            state.seen = dict(data["seen"])
            state.pending = [(t, seq, event_from_dict(ev)) for t, seq, ev in data["p"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidRecord(f"unreadable session state: {exc!r}") from None
        return state

    def approx_bytes(self) -> int:
        """Rough in-memory size, for the memory-per-session figure."""
        return len(self.to_bytes())


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _undec(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)
