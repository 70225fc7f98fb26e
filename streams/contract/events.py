"""Storefront events (docs/semantics.md, "Events"): the record classes, event time, canonical
encoding.

The classes are msgspec ``Struct``s: small, and not tracked by the garbage collector
(``gc=False``: they hold no cycles). ``parse_event`` (streams/contract/event_parse.py) decodes
them from the native reader's JSON; nothing in cartpulse changes an event after that.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, Literal

import msgspec
import orjson

from streams.contract import native
from streams.contract.errors import InvalidRecord

EventType = Literal[
    "page_viewed",
    "product_viewed",
    "cart_item_added",
    "cart_item_removed",
    "checkout_started",
    "order_completed",
]
EVENT_TYPES: Final[frozenset[str]] = frozenset(
    {
        "page_viewed",
        "product_viewed",
        "cart_item_added",
        "cart_item_removed",
        "checkout_started",
        "order_completed",
    }
)
CART_CHANGE: Final = frozenset({"cart_item_added", "cart_item_removed"})

MAX_RECORD_BYTES: Final = 64 * 1024
MAX_ID_LENGTH: Final = 256
# Epoch milliseconds accepted as event time: 2000-01-01 .. 2100-01-01, the native reader's rule
# (native/src/text.rs), which every input format goes through (``parse_time``).
MIN_EVENT_MS: Final = native.MIN_EVENT_MS
MAX_EVENT_MS: Final = native.MAX_EVENT_MS


class Product(msgspec.Struct, gc=False):
    id: str
    name: str | None = None
    price: Decimal | None = None
    currency: str | None = None
    url: str | None = None
    image_url: str | None = None
    category: str | None = None


class CartRef(msgspec.Struct, gc=False):
    id: str | None = None
    url: str | None = None


class Order(msgspec.Struct, gc=False):
    id: str | None = None
    value: Decimal | None = None
    currency: str | None = None
    # the codes the shopper entered at checkout, as the store wrote them (docs/semantics.md)
    discount_codes: tuple[str, ...] = ()


class Event(msgspec.Struct, gc=False):
    """One validated storefront event. ``occurred_at`` is epoch milliseconds, UTC.

    Treat events as immutable; nothing in cartpulse changes one after validation.
    """

    event_id: str
    type: EventType
    occurred_at: int
    session_id: str
    customer_id: str | None = None
    store_id: str | None = None
    product: Product | None = None
    quantity: int = 1
    cart: CartRef | None = None
    order: Order | None = None

    def to_dict(self) -> dict[str, Any]:
        """The canonical contract shape (times as RFC 3339 UTC with milliseconds)."""
        out: dict[str, Any] = {
            "event_id": self.event_id,
            "type": self.type,
            "occurred_at": format_ms(self.occurred_at),
            "session_id": self.session_id,
        }
        if self.customer_id is not None:
            out["customer_id"] = self.customer_id
        if self.store_id is not None:
            out["store_id"] = self.store_id
        if self.product is not None:
            out["product"] = _drop_none(
                {
                    "id": self.product.id,
                    "name": self.product.name,
                    "price": _decimal_str(self.product.price),
                    "currency": self.product.currency,
                    "url": self.product.url,
                    "image_url": self.product.image_url,
                    "category": self.product.category,
                }
            )
        if self.type in CART_CHANGE:
            out["quantity"] = self.quantity
        if self.cart is not None:
            out["cart"] = _drop_none({"id": self.cart.id, "url": self.cart.url})
        if self.order is not None:
            out["order"] = _drop_none(
                {
                    "id": self.order.id,
                    "value": _decimal_str(self.order.value),
                    "currency": self.order.currency,
                    "discount_codes": list(self.order.discount_codes) or None,
                }
            )
        return out

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


def parse_time(value: object, field: str = "occurred_at") -> int:
    """RFC 3339 with a UTC offset, or epoch milliseconds → epoch milliseconds, within 2000..2100.

    The contract's rule, native (``streams.contract.native.field_time``, native/src/read.rs),
    the one the event reader applies too; raises ``InvalidRecord`` naming ``field`` and saying
    what is wrong.
    """
    try:
        return native.field_time(value, field)
    except ValueError as exc:
        raise InvalidRecord(str(exc)) from None


_SECONDS: dict[int, str] = {}
_MILLIS_SUFFIX: Final = tuple(f".{m:03d}Z" for m in range(1000))


def format_ms(ms: int) -> str:
    """Epoch milliseconds → ``2019-10-01T00:10:00.000Z``."""
    seconds, millis = divmod(ms, 1000)
    prefix = _SECONDS.get(seconds)
    if prefix is None:
        if len(_SECONDS) > 100_000:  # bounded: recent seconds repeat, old ones don't
            _SECONDS.clear()
        prefix = _SECONDS[seconds] = f"{datetime.fromtimestamp(seconds, tz=UTC):%Y-%m-%dT%H:%M:%S}"
    return prefix + _MILLIS_SUFFIX[millis]


def _decimal_str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}
