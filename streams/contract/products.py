"""Product catalogue records (the ``products`` topic): one version of a product as of a moment.

The topic is compacted and keyed by ``product_id``; each record is a JSON object::

    {"product_id": "p1", "store_id": "s1", "name": "Chair", "url": "https://…",
     "image_url": "https://…", "price": "80.00", "currency": "EUR", "in_stock": true,
     "inventory": 3, "updated_at": "2026-01-01T10:00:00.000Z"}

Only ``product_id`` (from the field or the record key) and ``updated_at`` are required. Times,
prices, currencies and store ids follow the event contract's own rules, the native reader's
(``parse_time``, ``parse_amount``, ``parse_currency``, ``parse_optional_id``), so a value an
event may carry, a product record may carry too.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

import orjson

from streams.contract.errors import InvalidRecord
from streams.contract.event_parse import parse_amount, parse_currency, parse_optional_id
from streams.contract.events import MAX_RECORD_BYTES, format_ms, parse_time

# Inventory is a signed 64-bit count: a shop that oversells reports a negative one.
MAX_INVENTORY: Final = 2**63 - 1
MIN_INVENTORY: Final = -(2**63)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProductVersion:
    """A product as it was from ``updated_ms`` (epoch milliseconds, UTC) on."""

    product_id: str
    store_id: str | None = None
    name: str | None = None
    url: str | None = None
    image_url: str | None = None
    price: Decimal | None = None
    currency: str | None = None
    in_stock: bool = True
    inventory: int | None = None
    updated_ms: int

    def to_dict(self) -> dict[str, Any]:
        """The topic's shape: absent values left out, the price as decimal text, ``updated_at``
        as RFC 3339 UTC with milliseconds."""
        optional = {
            "store_id": self.store_id,
            "name": self.name,
            "url": self.url,
            "image_url": self.image_url,
            "price": None if self.price is None else str(self.price),
            "currency": self.currency,
        }
        out: dict[str, Any] = {"product_id": self.product_id}
        out |= {key: value for key, value in optional.items() if value is not None}
        out["in_stock"] = self.in_stock
        if self.inventory is not None:
            out["inventory"] = self.inventory
        out["updated_at"] = format_ms(self.updated_ms)
        return out

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


def parse_product(
    key: bytes | None, value: bytes | None, max_bytes: int = MAX_RECORD_BYTES
) -> ProductVersion | None:
    """One ``products`` record → a ``ProductVersion``; ``None`` for a tombstone (no value).

    ``product_id`` comes from the field, else from the key; when both are given they must be
    equal. Raises ``InvalidRecord`` (reason in ``.reason``) for a record over ``max_bytes``,
    one that is not a JSON object, and each bad field; never anything else.
    """
    if value is None:
        return None
    if len(value) > max_bytes:
        raise InvalidRecord(f"record is {len(value)} bytes, over the {max_bytes}-byte limit")
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise InvalidRecord(f"not valid JSON: {exc.args[0] if exc.args else exc}") from None
    if not isinstance(data, dict):
        raise InvalidRecord("a product record must be a JSON object")
    return ProductVersion(
        product_id=_product_id(key, data.get("product_id")),
        store_id=parse_optional_id(data.get("store_id"), "store_id"),
        name=_text(data, "name"),
        url=_text(data, "url"),
        image_url=_text(data, "image_url"),
        price=parse_amount(data.get("price"), "price"),
        currency=parse_currency(data.get("currency"), "currency"),
        in_stock=_in_stock(data.get("in_stock")),
        inventory=_inventory(data.get("inventory")),
        updated_ms=parse_time(data.get("updated_at"), "updated_at"),
    )


def _product_id(key: bytes | None, field: object) -> str:
    from_key = None
    if key:
        try:
            from_key = key.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRecord("the record key (product_id) is not UTF-8") from None
    value = parse_optional_id(field, "product_id")
    if value is None:
        if from_key is None:
            raise InvalidRecord("product_id is required (in the record or as its key)")
        value = parse_optional_id(from_key, "product_id") or from_key
    if from_key is not None and from_key != value:
        raise InvalidRecord(
            f"product_id {value!r:.40} differs from the record key {from_key!r:.40}"
        )
    return value


def _text(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidRecord(f"{key} must be a string")
    return value


def _in_stock(value: object) -> bool:
    if value is None:
        return True
    if not isinstance(value, bool):
        raise InvalidRecord(f"in_stock must be true or false, got {value!r:.20}")
    return value


def _inventory(value: object) -> int | None:
    if value is None:
        return None
    if type(value) is not int or not MIN_INVENTORY <= value <= MAX_INVENTORY:
        raise InvalidRecord(f"inventory must be a 64-bit integer, got {value!r:.30}")
    return value
