"""The abandonment record (BRIEF §3 output), identical on the topic and in offline JSONL."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import orjson

from streams.models.events import format_ms
from streams.models.ids import stable_id

Kind = Literal["cart", "browse"]


@dataclass(slots=True)
class CartItem:
    product_id: str
    quantity: int
    price: Decimal | None
    name: str | None
    url: str | None
    image_url: str | None


@dataclass(slots=True)
class ViewedProduct:
    product_id: str
    views: int
    price: Decimal | None
    name: str | None
    url: str | None


@dataclass(slots=True)
class Abandonment:
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "abandonment_id": self.abandonment_id,
            "kind": self.kind,
            "session_id": self.session_id,
            "customer_id": self.customer_id,
            "store_id": self.store_id,
            "last_activity_at": format_ms(self.last_activity_at),
            "detected_at": format_ms(self.detected_at),
            "checkout_started": self.checkout_started,
            "cart": {
                "items": [
                    {
                        "product_id": item.product_id,
                        "quantity": item.quantity,
                        "price": _money(item.price),
                        "name": item.name,
                        "url": item.url,
                        "image_url": item.image_url,
                    }
                    for item in self.cart_items
                ],
                "value": _money(self.cart_value),
                "currency": self.cart_currency,
                "url": self.cart_url,
            },
            "viewed_products": [
                {
                    "product_id": viewed.product_id,
                    "views": viewed.views,
                    "price": _money(viewed.price),
                    "name": viewed.name,
                    "url": viewed.url,
                }
                for viewed in self.viewed_products
            ],
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


def abandonment_id(session_id: str, kind: Kind, deadline_ms: int) -> str:
    """Stable id of (session_id, kind, deadline): a repeat after a restart carries the same id."""
    return stable_id("ab", 16, session_id, kind, deadline_ms)


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)
