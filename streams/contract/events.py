"""Storefront events (docs/semantics.md, "Events"): the record classes and event time.

The classes are msgspec ``Struct``s: small, and not tracked by the garbage collector
(``gc=False``: they hold no cycles). ``parse_event`` (streams/contract/event_parse.py) decodes
them from the native reader's JSON; nothing in cartpulse changes an event after that. The
canonical encoding of an event is the reader's too (``canonical_json``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final, Literal

import msgspec

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
# The contract's types (``EventType`` spells them for the type checker; tests/unit/test_events.py
# holds the two together), its record size limit and its id length limit: the native reader's.
EVENT_TYPES: Final[frozenset[str]] = frozenset(native.EVENT_TYPES)

MAX_RECORD_BYTES: Final = native.MAX_RECORD_BYTES
MAX_ID_LENGTH: Final = native.MAX_ID_CHARS
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


def format_ms(ms: int) -> str:
    """Epoch milliseconds → ``2019-10-01T00:10:00.000Z``: the contract's time writer
    (native/src/text.rs), for every record cartpulse writes."""
    return native.format_time(ms)
