"""Sample variables for every shipped message, in the shape docs/templates.md gives them.

Built by hand rather than by the journey engine, so the pack's tests and screenshots cover
every template (the flows of checkout, price drops, back in stock and high-value carts
included) whichever flows a policy ships. Prices are decimal strings; ``was_price`` is there
only when the current price is lower, ``low_stock`` only when true, and a line's ``currency``
beside it, as the engine writes them. Each shipped locale has a shopper of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

BASE: Final = "https://shop.example.com"
UNSUBSCRIBE_URL: Final = "https://shop.example.com/unsubscribe?token=sample"
POSTAL_ADDRESS: Final = "Cartpulse Demo Store, 100 Example Street, Springfield, NY 10001, USA"
SUPPORT: Final = "help@shop.example.com"
LOCALES: Final = ("en", "de", "fr", "es")
# The emails and SMS the new flows send (docs/templates.md, "Names").
FLOW_EMAILS: Final = (
    "checkout_email_1",
    "price_drop_email_1",
    "back_in_stock_email_1",
    "cart_email_vip_1",
)
FLOW_SMS: Final = ("price_drop_sms_1", "back_in_stock_sms_1")
# One new flow email per locale for docs/img and README.md
FLOW_SCREENSHOTS: Final = (
    ("price_drop_email_1", "en"),
    ("back_in_stock_email_1", "de"),
    ("checkout_email_1", "fr"),
    ("cart_email_vip_1", "es"),
)
TRIGGERS: Final = {
    "checkout_email_1": "checkout",
    "price_drop_email_1": "price_drop",
    "price_drop_sms_1": "price_drop",
    "back_in_stock_email_1": "back_in_stock",
    "back_in_stock_sms_1": "back_in_stock",
    "cart_email_vip_1": "cart",
    "cart_email_1": "cart",
    "cart_email_2": "cart",
    "cart_sms_1": "cart",
    "browse_email_1": "browse",
    "browse_sms_1": "browse",
}
PRODUCT_TRIGGERS: Final = frozenset({"browse", "price_drop", "back_in_stock"})


@dataclass(frozen=True, slots=True)
class Shopper:
    first_name: str
    locale: str
    timezone: str
    currency: str


SHOPPERS: Final = {
    "en": Shopper("Ann", "en-US", "America/Chicago", "USD"),
    "de": Shopper("Jonas", "de-DE", "Europe/Berlin", "EUR"),
    "fr": Shopper("Camille", "fr-FR", "Europe/Paris", "EUR"),
    "es": Shopper("Lucía", "es-ES", "Europe/Madrid", "EUR"),
}


def line(
    product_id: str,
    name: str,
    price: str,
    currency: str,
    *,
    quantity: int | None = None,
    was_price: str | None = None,
    low_stock: bool = False,
) -> dict[str, Any]:
    """A cart line or a product, as the engine writes it (absent fields left out)."""
    item: dict[str, Any] = {
        "id": product_id,
        "product_id": product_id,
        "name": name,
        "price": price,
        "currency": currency,
        "url": f"{BASE}/p/{product_id}",
        "image_url": f"{BASE}/img/{product_id}.jpg",
    }
    if quantity is not None:
        item["quantity"] = quantity
    if was_price is not None:
        item["was_price"] = was_price
    if low_stock:
        item["low_stock"] = True
    return item


def cart_lines(currency: str, *, was: bool = True, low_stock: bool = True) -> list[dict[str, Any]]:
    """Three lines: the mug's price dropped since it was added, the towels are nearly gone."""
    return [
        line("mug-ocean", "Stoneware Mug, Ocean Blue", "16.00", currency, quantity=2,
             was_price="18.00" if was else None),
        line("pour-over", "Pour-Over Coffee Set with Glass Carafe and Reusable Steel Filter",
             "64.00", currency, quantity=1),
        line("tea-towel", "Linen Tea Towel", "12.50", currency, quantity=1, low_stock=low_stock),
    ]  # fmt: skip


def kettle(currency: str, *, was: bool = True, low_stock: bool = False) -> dict[str, Any]:
    """The product a browse, price-drop or back-in-stock message is about."""
    return {
        **line("kettle", "Gooseneck Kettle", "79.00", currency,
               was_price="89.00" if was else None, low_stock=low_stock),
        "views": 3,
    }  # fmt: skip


def variables(
    template: str,
    locale: str,
    *,
    was: bool = True,
    low_stock: bool = True,
    first_name: bool = True,
) -> dict[str, Any]:
    """What the email or SMS sender renders ``template`` with for the ``locale`` shopper
    (the unsubscribe link included, as the email sender adds it)."""
    shopper = SHOPPERS[locale]
    trigger = TRIGGERS[template]
    currency = shopper.currency
    out: dict[str, Any] = {
        "store_name": "Cartpulse Demo Store",
        "store_postal_address": POSTAL_ADDRESS,
        "store_support": SUPPORT,
        "store_url": BASE,
        "store_logo_url": f"{BASE}/static/logo.png",
        "store_accent_color": "#0f766e",
        "timezone": shopper.timezone,
        "trigger": trigger,
        "checkout_started": trigger == "checkout",
        "unsubscribe_url": UNSUBSCRIBE_URL,
    }
    if first_name:
        out["first_name"] = shopper.first_name
    if trigger in PRODUCT_TRIGGERS:
        product = kettle(currency, was=was and trigger != "back_in_stock",
                         low_stock=low_stock and trigger == "back_in_stock")  # fmt: skip
        grinder = line("grinder", "Hand Coffee Grinder", "45.00", currency)
        out |= {
            "cart_url": BASE,
            "cart_items": [],
            "viewed_products": [product, {**grinder, "views": 1}],
            "product": product,
            "product_url": product["url"],
        }
    else:
        items = cart_lines(currency, was=was, low_stock=low_stock)
        out |= {
            "cart_url": f"{BASE}/cart/c-1",
            "cart_items": items,
            "cart_value": "108.50",  # 2 x 16.00 + 64.00 + 12.50, at today's prices
            "cart_currency": currency,
            "viewed_products": [],
        }
    return out


def without(values: dict[str, Any], *names: str) -> dict[str, Any]:
    """``values`` as an older command has them: without ``names`` on the lines and product
    (``image_url``, ``price``, ...), which then show nothing in their place."""

    def strip(item: Any) -> Any:
        if not isinstance(item, dict):
            return item
        return {k: v for k, v in item.items() if k not in names}

    out = dict(values)
    for key in ("cart_items", "viewed_products"):
        out[key] = [strip(item) for item in out.get(key, [])]
    if "product" in out:
        out["product"] = strip(out["product"])
    return out
