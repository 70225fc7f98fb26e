"""Records the journey engine reads and writes (docs/semantics.md, Journeys), besides send commands.

Inputs: abandonments (``parse_abandonment``), orders (``Order`` from an ``order_completed``
event), customer profiles (``parse_profile``), consent changes and send results. Outputs:
decisions (the audit trail on ``journey.decisions``) and recoveries. Parsers raise
``InvalidRecord`` with a reason; the shells send such records to the DLQ.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal

import orjson

from streams.contract.commands import CHANNELS, Channel
from streams.contract.errors import InvalidRecord
from streams.contract.events import Event, format_ms, parse_time
from streams.contract.json_record import json_object

Action = Literal[
    "started", "ignored", "updated", "scheduled", "deferred", "skipped", "emitted", "ended"
]


@dataclass(frozen=True, slots=True)
class AbandonmentIn:
    abandonment_id: str
    kind: str  # a detector's Kind, or a catalogue trigger (price_drop, back_in_stock)
    session_id: str
    customer_id: str | None
    store_id: str
    last_activity_ms: int
    detected_ms: int
    checkout_started: bool
    cart: dict[str, Any]
    viewed_products: list[Any]


def cart_value(cart: dict[str, Any]) -> Decimal | None:
    """The cart's value as a number, or None when it is missing, zero or not a finite number
    (the abandonment passes the cart through as the detector wrote it)."""
    raw = cart.get("value")
    return None if not raw else decimal_of(raw)


def decimal_of(raw: object) -> Decimal | None:
    """An amount as the records carry it (a string or a number) as a finite Decimal, or None."""
    if raw is None or isinstance(raw, bool):
        return None
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


@dataclass(frozen=True, slots=True)
class OrderIn:
    event_id: str
    customer_id: str | None
    session_id: str
    occurred_ms: int
    order_id: str | None
    value: Decimal | None
    currency: str | None
    store_id: str | None
    discount_codes: tuple[str, ...] = ()  # as entered at checkout

    @classmethod
    def of(cls, event: Event) -> OrderIn:
        order = event.order
        return cls(
            event.event_id,
            event.customer_id,
            event.session_id,
            event.occurred_at,
            order.id if order else None,
            order.value if order else None,
            order.currency if order else None,
            event.store_id,
            order.discount_codes if order else (),
        )


@dataclass(frozen=True, slots=True)
class Profile:
    customer_id: str
    phone: str | None = None
    email: str | None = None
    first_name: str | None = None
    locale: str | None = None
    timezone: str | None = None
    country: str | None = None
    existing_customer: bool = False
    orders_count: int = 0
    total_spent: str | None = None  # a decimal amount, as the store wrote it
    tags: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__slots__}
        out["tags"] = list(self.tags)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        return cls(**{**data, "tags": tuple(data.get("tags", ()))})


@dataclass(frozen=True, slots=True)
class EngagementIn:
    """A shopper's reaction to a message (``engagement``: a click, an email open)."""

    customer_id: str
    kind: Literal["link_clicked", "email_opened"]
    command_id: str | None
    occurred_ms: int


@dataclass(frozen=True, slots=True)
class ConsentChange:
    customer_id: str
    channel: Channel
    status: str | None  # opted_in, opted_out, or None for a deleted record
    recorded_ms: int
    source: str = ""


def _object(raw: bytes | None, what: str) -> dict[str, Any]:
    if raw is None:
        raise InvalidRecord(f"{what} record needs a value")
    return json_object(raw, what)


def _opt_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidRecord(f"{key} must be a string")
    return value


def parse_abandonment(raw: bytes | None) -> AbandonmentIn:
    data = _object(raw, "abandonment")
    kind = data.get("kind")
    if kind not in ("cart", "browse"):
        raise InvalidRecord("abandonment kind must be 'cart' or 'browse'")
    ids = {k: _opt_str(data, k) for k in ("abandonment_id", "session_id", "store_id")}
    if not ids["abandonment_id"] or not ids["session_id"]:
        raise InvalidRecord("abandonment needs abandonment_id and session_id")
    cart = data.get("cart") or {}
    viewed = data.get("viewed_products") or []
    if not isinstance(cart, dict) or not isinstance(viewed, list):
        raise InvalidRecord("cart must be an object and viewed_products a list")
    return AbandonmentIn(
        abandonment_id=ids["abandonment_id"],
        kind=kind,
        session_id=ids["session_id"],
        customer_id=_opt_str(data, "customer_id"),
        store_id=ids["store_id"] or "default",
        last_activity_ms=parse_time(data.get("last_activity_at"), "last_activity_at"),
        detected_ms=parse_time(data.get("detected_at"), "detected_at"),
        checkout_started=bool(data.get("checkout_started")),
        cart=cart,
        viewed_products=viewed,
    )


def parse_profile(key: bytes | None, raw: bytes | None) -> Profile:
    """A ``customers`` record; the customer id is the key (or the value's customer_id)."""
    data = _object(raw, "customer profile")
    customer_id = _opt_str(data, "customer_id") or (key.decode("utf-8", "replace") if key else "")
    if not customer_id:
        raise InvalidRecord("a customer profile needs its customer_id (key or field)")
    existing = data.get("existing_customer", False)
    orders = data.get("orders_count", 0)
    if orders is None:
        orders = 0
    if not isinstance(orders, int) or isinstance(orders, bool) or orders < 0:
        raise InvalidRecord("orders_count must be a whole number >= 0")
    spent = data.get("total_spent")
    if spent is not None and cart_value({"value": spent}) is None and spent not in (0, "0"):
        raise InvalidRecord("total_spent must be a decimal amount")
    return Profile(
        customer_id=customer_id,
        phone=_opt_str(data, "phone"),
        email=_opt_str(data, "email"),
        first_name=_opt_str(data, "first_name"),
        locale=_opt_str(data, "locale"),
        timezone=_opt_str(data, "timezone"),
        country=_opt_str(data, "country"),
        existing_customer=existing is True or orders > 0,
        orders_count=orders,
        total_spent=None if spent is None else str(spent),
        tags=_tags(data.get("tags")),
    )


MAX_TAGS = 64


def _tags(raw: object) -> tuple[str, ...]:
    """Tags as a list of strings, or one comma-separated string (as Shopify writes them)."""
    if raw is None or raw == "":
        return ()
    if isinstance(raw, str):
        raw = raw.split(",")
    if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
        raise InvalidRecord("tags must be a list of strings or a comma-separated string")
    tags = tuple(dict.fromkeys(t.strip() for t in raw if t.strip()))
    if len(tags) > MAX_TAGS or any(len(t) > 255 for t in tags):
        raise InvalidRecord(f"tags: at most {MAX_TAGS}, each at most 255 characters")
    return tags


ENGAGEMENT_KINDS: Final = frozenset({"link_clicked", "email_opened"})


def parse_engagement(key: bytes | None, raw: bytes | None) -> EngagementIn | None:
    """An ``engagement`` record, or None for a kind the journeys do not read."""
    data = _object(raw, "engagement")
    kind = data.get("type")
    if kind not in ENGAGEMENT_KINDS:
        return None
    customer_id = _opt_str(data, "customer_id") or (key.decode("utf-8", "replace") if key else "")
    if not customer_id:
        raise InvalidRecord("an engagement record needs its customer_id (key or field)")
    return EngagementIn(
        customer_id, kind, _opt_str(data, "command_id"),
        parse_time(data.get("occurred_at"), "occurred_at"),
    )  # fmt: skip


def parse_consent(key: bytes | None, raw: bytes | None) -> ConsentChange:
    """A ``consents`` record keyed ``customer_id:channel`` (a tombstone deletes it)."""
    if not key:
        raise InvalidRecord("a consent record needs its key customer_id:channel")
    customer_id, sep, channel = key.decode("utf-8", "replace").rpartition(":")
    if not sep or not customer_id or channel not in CHANNELS:
        raise InvalidRecord("consent key must be customer_id:channel with channel sms or email")
    if raw is None:
        return ConsentChange(customer_id, channel, None, 0)
    data = _object(raw, "consent")
    status = data.get("status")
    if status not in ("opted_in", "opted_out"):
        raise InvalidRecord("consent status must be opted_in or opted_out")
    recorded = parse_time(data.get("recorded_at"), "recorded_at")
    return ConsentChange(customer_id, channel, status, recorded, _opt_str(data, "source") or "")


@dataclass(frozen=True, slots=True)
class Decision:
    """One line of the audit trail: what the engine did for a journey, and why."""

    at_ms: int
    customer_id: str
    action: Action
    reason: str
    journey_id: str | None = None
    abandonment_id: str | None = None
    flow: str | None = None
    variant: str | None = None
    step: int | None = None
    channel: Channel | None = None
    due_ms: int | None = None
    command_id: str | None = None
    value: str | None = None  # revenue of a conversion

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "at": format_ms(self.at_ms),
            "customer_id": self.customer_id,
            "action": self.action,
            "reason": self.reason,
        }
        for key in ("journey_id", "abandonment_id", "flow", "variant", "step", "channel"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.due_ms is not None:
            out["due"] = format_ms(self.due_ms)
        if self.command_id is not None:
            out["command_id"] = self.command_id
        if self.value is not None:
            out["value"] = self.value
        return out

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


@dataclass(frozen=True, slots=True)
class Recovery:
    """An order credited to the last message sent before it (docs/semantics.md)."""

    customer_id: str
    order_event_id: str
    order_id: str | None
    occurred_ms: int
    revenue: Decimal | None
    currency: str | None
    journey_id: str
    abandonment_id: str
    flow: str
    variant: str
    channel: Channel
    command_id: str
    store_id: str
    coupon_code: str | None = None  # the journey's coupon, when the order used it

    def to_dict(self) -> dict[str, Any]:
        coupon = {} if self.coupon_code is None else {"coupon_code": self.coupon_code}
        return {
            "recovery_id": f"rc-{self.order_event_id}",
            "customer_id": self.customer_id,
            "order_id": self.order_id,
            "occurred_at": format_ms(self.occurred_ms),
            "revenue": None if self.revenue is None else str(self.revenue),
            "currency": self.currency,
            "journey_id": self.journey_id,
            "abandonment_id": self.abandonment_id,
            "flow": self.flow,
            "variant": self.variant,
            "channel": self.channel,
            "command_id": self.command_id,
            "store_id": self.store_id,
            **coupon,
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())
