"""What a flow's conditions see and what a message shows, pure: the catalogue as of a moment.

``current_items`` is the send-time product check (docs/semantics.md, Products): each line of
a cart (or each viewed product) is looked up in the catalogue as it was at the moment the step
is judged; a product then out of stock is left out, the current price replaces the one the
shopper saw (which stays as ``was_price`` when it has dropped), and ``low_stock`` marks an
inventory at or under the store's threshold. A product the catalogue does not know is shown
as the shopper saw it.

``condition_context`` builds the typed context of docs/semantics.md, Conditions: every name
is always present, with a zero value (``""``, ``0``, ``0.0``, ``false``, ``[]``) when unknown,
except ``inventory``, which is ``-1`` when the catalogue does not know it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from streams.contract.journey import Profile, cart_value, decimal_of
from streams.core.catalogue import Catalogue


@dataclass(frozen=True, slots=True)
class Shown:
    """What a message shows: cart lines, viewed products, and the cart's value when the
    catalogue changed it (None: the cart's own)."""

    items: list[dict[str, Any]]
    viewed: list[dict[str, Any]]
    value: str | None


def shown_at(
    cart: dict[str, Any],
    viewed: object,
    catalogue: Catalogue,
    at_ms: int,
    low_stock_threshold: int,
    about_cart: bool,
) -> tuple[Shown, bool]:
    """What a step shows at ``at_ms``, and whether it has nothing left to show: every line
    of its cart (or, for a journey about products, every product) is out of stock."""
    items, dropped, changed = current_items(
        cart.get("items"), catalogue, at_ms, low_stock_threshold
    )
    products, gone, _ = current_items(viewed, catalogue, at_ms, low_stock_threshold)
    value = lines_value(cart, items) if changed else None
    empty = (not items and dropped) if about_cart else (not products and gone)
    return Shown(items, products, value), empty


def current_items(
    items: object, catalogue: Catalogue, at_ms: int, low_stock_threshold: int
) -> tuple[list[dict[str, Any]], bool, bool]:
    """The lines as the message shows them at ``at_ms`` (empty fields dropped), whether any
    was left out because it is out of stock, and whether the catalogue changed any."""
    if not isinstance(items, list):
        return [], False, False
    shown: list[dict[str, Any]] = []
    dropped = changed = False
    for raw in items:
        if not isinstance(raw, dict):
            continue
        item = {k: v for k, v in raw.items() if v is not None}
        product_id = item.get("product_id")
        version = catalogue.as_of(product_id, at_ms) if isinstance(product_id, str) else None
        if version is None:
            shown.append(item)
            continue
        changed = True
        if not version.in_stock:
            dropped = True
            continue
        for key in ("name", "url", "image_url"):
            value = getattr(version, key)
            if key not in item and value is not None:
                item[key] = value
        seen = decimal_of(item.get("price"))
        if version.price is not None:
            item["price"] = str(version.price)
            if version.currency is not None:
                item.setdefault("currency", version.currency)
            if seen is not None and version.price < seen:
                item["was_price"] = str(seen)
        if version.inventory is not None and version.inventory <= low_stock_threshold:
            item["low_stock"] = True
        shown.append(item)
    return shown, dropped, changed


def lines_value(cart: dict[str, Any], items: Sequence[dict[str, Any]]) -> str | None:
    """The cart's value over ``items`` (the sum of quantity * price), or the cart's own when a line
    has no price."""
    total = Decimal(0)
    for item in items:
        price, quantity = decimal_of(item.get("price")), item.get("quantity", 1)
        if price is None or not isinstance(quantity, int) or isinstance(quantity, bool):
            raw = cart.get("value")
            return None if raw is None else str(raw)
        total += price * quantity
    return str(total)


def condition_context(
    roots: frozenset[str],
    *,
    kind: str,
    checkout_started: bool,
    cart: dict[str, Any],
    items: Sequence[dict[str, Any]],
    viewed: Sequence[Any],
    profile: Profile | None,
    messages_sent: int,
    engaged: Sequence[str],
    at_ms: int,
    zone: ZoneInfo,
    catalogue: Catalogue,
) -> dict[str, Any]:
    """The context a ``when`` condition is evaluated in (docs/semantics.md, Conditions), with
    only the ``roots`` it reads: handing CEL a value costs more than evaluating it."""
    context: dict[str, Any] = {}
    if "cart" in roots:
        value = cart_value(cart)
        context["cart"] = {
            "value": float(value) if value is not None else 0.0,
            "currency": _text(cart.get("currency")),
            "items": [_item(item, catalogue, at_ms) for item in items],
        }
    if "abandonment" in roots:
        context["abandonment"] = {
            "kind": kind,
            "checkout_started": checkout_started,
            "products_viewed": len(viewed),
        }
    if "customer" in roots:
        context["customer"] = {
            "orders_count": profile.orders_count if profile else 0,
            "total_spent": float(decimal_of(profile.total_spent) or 0) if profile else 0.0,
            "tags": list(profile.tags) if profile else [],
            "country": (profile.country or "") if profile else "",
            "locale": (profile.locale or "") if profile else "",
        }
    if "journey" in roots:
        context["journey"] = {"messages_sent": messages_sent}
    if "engagement" in roots:
        context["engagement"] = {
            "clicked": "link_clicked" in engaged,
            "opened": "email_opened" in engaged,
        }
    if "now" in roots:
        local = datetime.fromtimestamp(at_ms / 1000, tz=UTC).astimezone(zone)
        context["now"] = {"local_hour": local.hour}
    return context


def _text(raw: object) -> str:
    return raw if isinstance(raw, str) else ""


def _item(item: dict[str, Any], catalogue: Catalogue, at_ms: int) -> dict[str, Any]:
    product_id = _text(item.get("product_id"))
    version = catalogue.as_of(product_id, at_ms) if product_id else None
    quantity = item.get("quantity", 1)
    price = (
        version.price if version and version.price is not None else decimal_of(item.get("price"))
    )
    return {
        "id": product_id,
        "name": _text(item.get("name")),
        "quantity": quantity if isinstance(quantity, int) and not isinstance(quantity, bool) else 1,
        "price": float(price) if price is not None else 0.0,
        "in_stock": version.in_stock if version else True,
        "inventory": version.inventory if version and version.inventory is not None else -1,
    }
