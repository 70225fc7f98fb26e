"""The abandonment record (docs/semantics.md, Detection) in Python, for the tests: an encoding written apart from the
detection core's (native/src/records.rs), which the core's records must equal byte for byte."""

from __future__ import annotations

from decimal import Decimal
from typing import Final

import msgspec

from streams.contract.abandonment import Kind
from streams.contract.events import format_ms, parse_time
from streams.contract.ids import stable_id
from streams.core.detection import Closed


class CartItem(msgspec.Struct, gc=False):
    product_id: str
    quantity: int
    price: Decimal | None
    name: str | None
    url: str | None
    image_url: str | None


class ViewedProduct(msgspec.Struct, gc=False):
    """A product viewed in a period, as its abandonment reports it."""

    product_id: str
    views: int
    price: Decimal | None = None
    name: str | None = None
    url: str | None = None


class Abandonment(msgspec.Struct, gc=False):
    abandonment_id: str
    kind: Kind
    session_id: str
    customer_id: str | None
    store_id: str
    last_activity_at: int  # epoch ms
    detected_at: int  # epoch ms: the period's deadline
    checkout_started: bool
    cart_items: tuple[CartItem, ...]
    cart_value: Decimal | None
    cart_currency: str | None
    cart_url: str | None
    viewed_products: tuple[ViewedProduct, ...]

    @property
    def key(self) -> str:
        """The record key on the topic: the customer when known, else the session."""
        return self.customer_id or self.session_id

    @classmethod
    def from_json(cls, raw: bytes) -> Abandonment:
        """The inverse of ``to_json`` (the detection core writes records in that form)."""
        record = _DECODE(raw)
        cart = record.cart
        return cls(
            record.abandonment_id,
            record.kind,
            record.session_id,
            record.customer_id,
            record.store_id,
            parse_time(record.last_activity_at, "last_activity_at"),
            parse_time(record.detected_at, "detected_at"),
            record.checkout_started,
            cart.items,
            cart.value,
            cart.currency,
            cart.url,
            record.viewed_products,
        )

    def to_json(self) -> bytes:
        """The abandonment record: times as RFC 3339 UTC with milliseconds, money as strings."""
        return _ENCODE(
            _Record(
                self.abandonment_id,
                self.kind,
                self.session_id,
                self.customer_id,
                self.store_id,
                format_ms(self.last_activity_at),
                format_ms(self.detected_at),
                self.checkout_started,
                _Cart(self.cart_items, self.cart_value, self.cart_currency, self.cart_url),
                self.viewed_products,
            )
        )


class _Cart(msgspec.Struct, gc=False):
    items: tuple[CartItem, ...]
    value: Decimal | None
    currency: str | None
    url: str | None


class _Record(msgspec.Struct, gc=False):
    """The record's JSON shape, field for field and in order (msgspec writes Decimal as text)."""

    abandonment_id: str
    kind: Kind
    session_id: str
    customer_id: str | None
    store_id: str
    last_activity_at: str
    detected_at: str
    checkout_started: bool
    cart: _Cart
    viewed_products: tuple[ViewedProduct, ...]


_ENCODE: Final = msgspec.json.Encoder(decimal_format="string").encode
_DECODE: Final = msgspec.json.Decoder(_Record).decode


def abandonment_id(session_id: str, kind: Kind, deadline_ms: int) -> str:
    """Stable id of (session_id, kind, deadline): a repeat after a restart carries the same id."""
    return stable_id("ab", 16, session_id, kind, deadline_ms)


def records(closed: list[Closed]) -> list[Abandonment]:
    """The core's records as ``Abandonment``s; each must be exactly what ``to_json`` writes."""
    found = [Abandonment.from_json(c.json) for c in closed]
    assert [a.to_json() for a in found] == [c.json for c in closed]
    assert [(a.kind, a.key, a.detected_at) for a in found] == [c[:3] for c in closed]
    return found
