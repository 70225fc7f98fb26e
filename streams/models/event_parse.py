"""Reading storefront events from bytes: a native reader for the plain shapes, and this one.

* **Native.** ``read_record``: the detection core's own reader (native/src/event.rs) takes the
  plain shapes storefronts send and checks the whole record, values it does not keep included.
  The worker and offline ``detect`` try it first; it leaves everything else to ``parse_event``.
* **Here.** ``parse_event``: orjson, then ``event_from_dict``, which validates by hand, accepts
  legal but unusual shapes (numeric ids, numeric prices, lower-case currencies) and says exactly
  what is wrong with a record it refuses. It is the authority: whatever the native reader takes,
  it reads as the same event (tests/unit/test_native_parse.py).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

import orjson

from streams._native import Record
from streams._native import amount as _native_amount
from streams._native import read as _native_read
from streams.errors import InvalidRecord, UnknownEventType
from streams.models.events import (
    CART_CHANGE,
    EVENT_TYPES,
    MAX_ID_LENGTH,
    MAX_QUANTITY,
    MAX_RECORD_BYTES,
    NEEDS_PRODUCT,
    CartRef,
    Event,
    EventType,
    Order,
    Product,
    parse_time,
)


def parse_event(raw: bytes | str, max_bytes: int = MAX_RECORD_BYTES) -> Event:
    """Decode and validate one record.

    Raises ``InvalidRecord`` (reason in ``.reason``) for a record that breaks the contract and
    ``UnknownEventType`` for a valid-looking record of an unknown ``type``. Never raises
    anything else, whatever the bytes.
    """
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode())
    if size > max_bytes:
        raise InvalidRecord(f"record is {size} bytes, over the {max_bytes}-byte limit")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRecord(f"not valid JSON: {exc.args[0] if exc.args else exc}") from None
    if not isinstance(data, dict):
        raise InvalidRecord(f"a record must be a JSON object, not {_json_type(data)}")
    return event_from_dict(data)


def read_record(raw: bytes, max_bytes: int = MAX_RECORD_BYTES) -> Record | None:
    """The native reader (native/src/event.rs): a ``Record`` for the detection core, or None for
    a record it leaves to ``parse_event``. What it reads, ``parse_event`` reads the same, so a
    shell may try it first."""
    return _native_read(raw, max_bytes)


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
    if customer_id is not None and (
        type(customer_id) is not str or len(customer_id) > MAX_ID_LENGTH
    ):
        customer_id = _optional_id(data, "customer_id")
    store_id = get("store_id")
    if store_id is not None and (type(store_id) is not str or len(store_id) > MAX_ID_LENGTH):
        store_id = _optional_id(data, "store_id")

    product = None
    raw_product = get("product")
    if raw_product is not None:
        product = _product(raw_product)
    elif etype in NEEDS_PRODUCT:
        raise InvalidRecord(f"{etype} needs product.id")

    quantity = 1
    if etype in CART_CHANGE:
        raw_qty = get("quantity", 1)
        if raw_qty is None:
            raw_qty = 1
        if type(raw_qty) is not int or not 1 <= raw_qty <= MAX_QUANTITY:
            raise InvalidRecord(
                f"quantity must be an integer >= 1 and < 2**63, got {raw_qty!r:.40}"
            )
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
            parse_amount(raw_order.get("value"), "order.value"),
            _currency(raw_order.get("currency"), "order.currency"),
            _discount_codes(raw_order.get("discount_codes")),
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
        parse_amount(price, "product.price"),
        _currency(currency, "product.currency"),
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


def parse_amount(value: object, label: str) -> Decimal | None:
    """A money amount (text or JSON number) → Decimal; None for absent or "".

    The rule is the native core's (``streams._native.amount``, native/src/money.rs): ASCII
    decimal text, ``-0`` read as ``0``, never negative, at most 28 significant digits and an
    exponent within ±28. A number is read as the text Python writes for it.
    """
    if value is None or value == "":
        return None
    # A tuple, not ``str | int | float``: the union is built anew on every call (slow).
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InvalidRecord(f"{label} must be a decimal number or string")
    try:
        return Decimal(_native_amount(value if type(value) is str else str(value)))
    except ValueError as exc:
        raise InvalidRecord(f"{label} {exc}, got {value!r:.40}") from None


MAX_DISCOUNT_CODES = 32


def _discount_codes(raw: object) -> tuple[str, ...]:
    """``order.discount_codes``: codes as strings, or objects with a ``code`` (Shopify's order
    shape, ``{"code", "amount", "type"}``); the native reader leaves such records to this one."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_DISCOUNT_CODES:
        raise InvalidRecord(
            f"order.discount_codes must be a list of at most {MAX_DISCOUNT_CODES} codes"
        )
    codes = []
    for item in raw:
        code = item.get("code") if isinstance(item, dict) else item
        if not isinstance(code, str) or not code.strip() or len(code) > MAX_ID_LENGTH:
            raise InvalidRecord(
                "order.discount_codes: each code is a non-empty string (or an object with one "
                f"in 'code') of at most {MAX_ID_LENGTH} characters"
            )
        codes.append(code.strip())
    return tuple(codes)


def _currency(value: object, label: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) != 3 or not value.isascii() or not value.isalpha():
        raise InvalidRecord(f"{label} must be an ISO 4217 code like 'USD', got {value!r:.20}")
    return value.upper()


def _json_type(value: object) -> str:
    return {list: "an array", str: "a string", int: "a number", float: "a number"}.get(
        type(value), "null" if value is None else type(value).__name__
    )
