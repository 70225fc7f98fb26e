"""Storefront events (BRIEF §2): validation from raw bytes and canonical orjson encoding.

``parse_event`` is on the hot path of the detector and of offline ``detect``: it validates by
hand (no pydantic) and keeps event time as integer epoch milliseconds. It raises
``InvalidRecord`` with a reason for anything the contract does not allow, and
``UnknownEventType`` (a subclass) for a well-formed record of a type cartpulse does not know.

The record classes are slotted dataclasses but not frozen: a frozen dataclass sets each field
through ``object.__setattr__`` and costs about 8x more to build (1.3 µs against 0.15 µs for ten
fields, measured here), which is most of the detector's budget per event. Treat them as
immutable all the same; nothing in cartpulse mutates an event after validation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal, cast

import orjson

from streams.errors import InvalidRecord, UnknownEventType

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
_NEEDS_PRODUCT: Final = frozenset({"product_viewed", "cart_item_added", "cart_item_removed"})
_CART_CHANGE: Final = frozenset({"cart_item_added", "cart_item_removed"})

MAX_RECORD_BYTES: Final = 64 * 1024
MAX_ID_LENGTH: Final = 256
# Epoch milliseconds accepted as event time: 2000-01-01 .. 2100-01-01. Anything outside is
# almost surely seconds-instead-of-milliseconds or a corrupt clock, and would poison watermarks.
MIN_EVENT_MS: Final = 946_684_800_000
MAX_EVENT_MS: Final = 4_102_444_800_000


@dataclass(slots=True)
class Product:
    id: str
    name: str | None = None
    price: Decimal | None = None
    currency: str | None = None
    url: str | None = None
    image_url: str | None = None
    category: str | None = None


@dataclass(slots=True)
class CartRef:
    id: str | None = None
    url: str | None = None


@dataclass(slots=True)
class Order:
    id: str | None = None
    value: Decimal | None = None
    currency: str | None = None


@dataclass(slots=True)
class Event:
    """One validated storefront event. ``occurred_at`` is epoch milliseconds, UTC."""

    event_id: str
    type: EventType
    occurred_at: int
    session_id: str
    customer_id: str | None
    store_id: str | None
    product: Product | None = None
    quantity: int = 1
    cart: CartRef | None = None
    order: Order | None = None
    # The record as received, when it came as bytes: state keeps pending events in this form.
    raw: bytes | None = field(default=None, compare=False, repr=False)

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
        if self.type in _CART_CHANGE:
            out["quantity"] = self.quantity
        if self.cart is not None:
            out["cart"] = _drop_none({"id": self.cart.id, "url": self.cart.url})
        if self.order is not None:
            out["order"] = _drop_none(
                {
                    "id": self.order.id,
                    "value": _decimal_str(self.order.value),
                    "currency": self.order.currency,
                }
            )
        return out

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


def parse_event(raw: bytes | str, max_bytes: int = MAX_RECORD_BYTES) -> Event:
    """Decode and validate one record.

    Raises ``InvalidRecord`` (reason in ``.reason``) for a record that breaks the contract and
    ``UnknownEventType`` for a valid-looking record of an unknown ``type``. Never raises
    anything else, whatever the bytes.
    """
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > max_bytes:
        raise InvalidRecord(f"record is {size} bytes, over the {max_bytes}-byte limit")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRecord(f"not valid JSON: {exc.args[0] if exc.args else exc}") from None
    if not isinstance(data, dict):
        raise InvalidRecord(f"a record must be a JSON object, not {_json_type(data)}")
    event = event_from_dict(data)
    if isinstance(raw, bytes):
        event.raw = raw
    return event


def event_from_dict(data: dict[str, Any]) -> Event:
    """Validate an already-decoded record (see ``parse_event`` for what it raises).

    The common shapes take the fast paths (exact type checks on ``dict.get``); anything else
    falls through to the helpers, which say what is wrong.
    """
    get = data.get
    event_id = get("event_id")
    if type(event_id) is not str or not 0 < len(event_id) <= MAX_ID_LENGTH:
        event_id = _required_id(data, "event_id")
    etype = get("type")
    if type(etype) is not str or etype not in EVENT_TYPES:
        if not isinstance(etype, str) or not etype:
            raise InvalidRecord("type is required and must be a non-empty string")
        raise UnknownEventType(f"unknown type {etype[:64]!r}")
    occurred_at = parse_time(get("occurred_at"), "occurred_at")
    session_id = get("session_id")
    if type(session_id) is not str or not 0 < len(session_id) <= MAX_ID_LENGTH:
        session_id = _required_id(data, "session_id")
    customer_id = get("customer_id")
    if customer_id is not None and (type(customer_id) is not str or len(customer_id) > 256):
        customer_id = _optional_id(data, "customer_id")
    store_id = get("store_id")
    if store_id is not None and (type(store_id) is not str or len(store_id) > MAX_ID_LENGTH):
        store_id = _optional_id(data, "store_id")

    product = None
    raw_product = get("product")
    if raw_product is not None:
        product = _product(raw_product)
    elif etype in _NEEDS_PRODUCT:
        raise InvalidRecord(f"{etype} needs product.id")

    quantity = 1
    if etype in _CART_CHANGE:
        raw_qty = get("quantity", 1)
        if raw_qty is None:
            raw_qty = 1
        if type(raw_qty) is not int or raw_qty < 1:
            raise InvalidRecord(f"quantity must be an integer >= 1, got {raw_qty!r:.40}")
        quantity = raw_qty

    cart = None
    raw_cart = get("cart")
    if raw_cart is not None:
        if not isinstance(raw_cart, dict):
            raise InvalidRecord("cart must be an object")
        cart = CartRef(_optional_id(raw_cart, "cart.id"), _optional_str(raw_cart, "url"))

    order = None
    raw_order = get("order")
    if raw_order is not None:
        if not isinstance(raw_order, dict):
            raise InvalidRecord("order must be an object")
        order = Order(
            _optional_id(raw_order, "order.id"),
            _decimal(raw_order.get("value"), "order.value"),
            _currency(raw_order.get("currency"), "order.currency"),
        )

    return Event(
        event_id,
        cast(EventType, etype),  # checked against EVENT_TYPES above
        occurred_at,
        session_id,
        customer_id or None,
        store_id or None,
        product,
        quantity,
        cart,
        order,
    )


def parse_time(value: object, field: str = "occurred_at") -> int:
    """RFC 3339 with an offset, or epoch milliseconds → epoch milliseconds."""
    if isinstance(value, str):
        if not 0 < len(value) <= 40:
            raise InvalidRecord(f"{field} must be RFC 3339 with an offset, got {value!r:.50}")
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidRecord(
                f"{field} must be RFC 3339 with an offset, got {value!r:.50}"
            ) from None
        if moment.tzinfo is None or len(value) < 20 or value[10] not in "Tt ":
            raise InvalidRecord(f"{field} needs a date, a time and a UTC offset, got {value!r:.50}")
        ms = int(moment.timestamp() * 1000)
    elif type(value) is int:
        ms = value
    elif value is None:
        raise InvalidRecord(f"{field} is required")
    else:
        raise InvalidRecord(f"{field} must be an RFC 3339 string or epoch milliseconds")
    if not MIN_EVENT_MS <= ms < MAX_EVENT_MS:
        raise InvalidRecord(f"{field} {value!r:.40} is outside 2000..2100 (seconds, not ms?)")
    return ms


_SECONDS: dict[int, str] = {}


def format_ms(ms: int) -> str:
    """Epoch milliseconds → ``2019-10-01T00:10:00.000Z``."""
    seconds, millis = divmod(ms, 1000)
    prefix = _SECONDS.get(seconds)
    if prefix is None:
        if len(_SECONDS) > 100_000:  # bounded: recent seconds repeat, old ones don't
            _SECONDS.clear()
        prefix = _SECONDS[seconds] = f"{datetime.fromtimestamp(seconds, tz=UTC):%Y-%m-%dT%H:%M:%S}"
    return f"{prefix}.{millis:03d}Z"


def _product(raw: object) -> Product:
    if not isinstance(raw, dict):
        raise InvalidRecord("product must be an object")
    get = raw.get
    pid = get("id")
    if type(pid) is not str or not 0 < len(pid) <= MAX_ID_LENGTH:
        pid = _required_id(raw, "id", "product.id")
    name, url, image_url, category = get("name"), get("url"), get("image_url"), get("category")
    for key, value in (
        ("name", name),
        ("url", url),
        ("image_url", image_url),
        ("category", category),
    ):
        if value is not None and type(value) is not str:
            raise InvalidRecord(f"product.{key} must be a string")
    price = get("price")
    currency = get("currency")
    return Product(
        pid,
        name,
        None if price is None else _decimal(price, "product.price"),
        None if currency is None else _currency(currency, "product.currency"),
        url,
        image_url,
        category,
    )


def _required_id(data: dict[str, Any], key: str, label: str | None = None) -> str:
    value = data.get(key)
    if type(value) is int:
        value = str(value)
    if not isinstance(value, str) or not value:
        raise InvalidRecord(f"{label or key} is required and must be a non-empty string")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidRecord(f"{label or key} is longer than {MAX_ID_LENGTH} characters")
    return value


def _optional_id(data: dict[str, Any], label: str) -> str | None:
    key = label.rpartition(".")[2]
    value = data.get(key)
    if value is None or value == "":
        return None
    if type(value) is int:
        return str(value)
    if not isinstance(value, str):
        raise InvalidRecord(f"{label} must be a string")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidRecord(f"{label} is longer than {MAX_ID_LENGTH} characters")
    return value


def _optional_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRecord(f"{key} must be a string")
    return value


def _decimal(value: object, label: str) -> Decimal | None:
    if value is None or value == "":
        return None
    # A tuple, not ``str | int | float``: the union is built anew on every call (slow).
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InvalidRecord(f"{label} must be a decimal number or string")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise InvalidRecord(f"{label} is not a decimal: {value!r:.40}") from None
    if not amount.is_finite() or amount < 0:
        raise InvalidRecord(f"{label} must be a finite amount >= 0, got {value!r:.40}")
    return amount


def _currency(value: object, label: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) != 3 or not value.isascii() or not value.isalpha():
        raise InvalidRecord(f"{label} must be an ISO 4217 code like 'USD', got {value!r:.20}")
    return value.upper()


def _decimal_str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _json_type(value: object) -> str:
    return {list: "an array", str: "a string", int: "a number", float: "a number"}.get(
        type(value), "null" if value is None else type(value).__name__
    )
