"""Send commands from journey steps (docs/semantics.md), pure: ids, template variables, coupons.

``build_command`` turns a due step of a journey into the ``SendCommand`` the senders consume.
Every field comes from the state and the policy, and times are the step's own (due, expiry),
so the same inputs give byte-identical commands live, replayed and offline.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from streams.contract.commands import LOCALE, Channel, Mode, SendCommand
from streams.contract.events import format_ms
from streams.contract.ids import stable_id
from streams.contract.journey import Profile, cart_value
from streams.core.eligibility import coupon_code, resolve_zone
from streams.core.flow_context import Shown
from streams.core.journey_state import CustomerState, Journey, StepState
from streams.core.policy import Policy

CART_KINDS = frozenset({"cart", "checkout"})  # journeys about a cart (the others: a product)


def journey_id_of(customer_id: str, flow: str, abandonment_id: str) -> str:
    return stable_id("jr", 12, customer_id, flow, abandonment_id)


def command_id_of(journey_id: str, step: int, channel: Channel) -> str:
    return stable_id("cmd", 16, journey_id, step, channel)


def build_command(
    policy: Policy,
    coupon_secret: bytes,
    mode: Mode,
    state: CustomerState,
    journey: Journey,
    step: StepState,
    address: str,
    opt_out_notice: bool = True,
    shown: Shown | None = None,
) -> SendCommand:
    """The command for ``step`` of ``journey``, to ``address``; an SMS without the opt-out
    line (``opt_out_notice`` false, the store's first_in_30_days rule) says so in its
    variables, ``sms_opt_out_notice: false``. ``shown``: the lines as the catalogue has them
    at the step's moment (``streams.core.flow_context``); without it, as the shopper saw them."""
    spec = policy.flows[journey.flow].steps[step.index]
    store = policy.store(journey.store_id)
    profile = state.profile or Profile(state.customer_id)
    cart = journey.cart
    if shown is None:
        shown = Shown(_clean(cart.get("items", [])), _clean(journey.viewed_products), None)
    product = top_product(shown.viewed)
    variables: dict[str, Any] = {
        "store_name": store.brand,
        "cart_url": cart.get("url") or store.url or "",
        "cart_items": shown.items,
        "viewed_products": shown.viewed,
        "checkout_started": journey.checkout_started,
        # the recipient's zone, for the times an email shows (quiet hours use the same rule)
        "timezone": resolve_zone(profile.timezone, store.timezone).key,
    }
    optional = {
        "first_name": profile.first_name,
        "cart_value": cart.get("value") if shown.value is None else shown.value,
        "cart_currency": cart.get("currency"),
        "store_url": store.url,
        "store_postal_address": store.postal_address,
        "store_support": store.support,
        "coupon": coupon_for(policy, coupon_secret, journey, step, shown),
        "product": product,
        "product_url": product.get("url") if product else None,
        "store_logo_url": store.logo_url,
        "store_accent_color": store.accent_color,
    }
    variables |= {key: value for key, value in optional.items() if value is not None}
    if spec.channel == "sms" and not opt_out_notice:
        variables["sms_opt_out_notice"] = False
    template = spec.template
    variant = policy.flows[journey.flow].variant(journey.variant)
    if variant is not None:
        template = variant.templates.get(template, template)
    locale = profile.locale if profile.locale and LOCALE.match(profile.locale) else store.locale
    return SendCommand(
        command_id=command_id_of(journey.journey_id, step.index, spec.channel),
        journey_id=journey.journey_id,
        abandonment_id=journey.abandonment_id,
        customer_id=state.customer_id,
        store_id=journey.store_id,
        channel=spec.channel,
        to=address,
        template=template,
        locale=locale,
        variables=variables,
        variant=journey.variant,
        not_before=_moment(step.due_ms),
        expires_at=_moment(step.expires_ms),
        created_at=_moment(step.due_ms),
        mode=mode,
    )


def coupon_for(
    policy: Policy, secret: bytes, journey: Journey, step: StepState, shown: Shown | None = None
) -> dict[str, Any] | None:
    """The step's coupon: when it offers one, the variant allows it and the cart reaches a tier
    of its currency. ``{code, percent | amount, currency?, min_order?, expires_at}``: exactly
    what the store registers (senders/coupons) before the message may go out."""
    flow = policy.flows[journey.flow]
    if not flow.steps[step.index].incentive:
        return None
    variant = flow.variant(journey.variant)
    if variant is not None and not variant.incentive:
        return None
    incentives = policy.incentives
    value = incentive_value(journey, shown)
    # no usable value, or a currency without tiers: no coupon
    offer = incentives.offer_for(value, incentive_currency(journey, shown))
    if offer is None:
        return None
    coupon: dict[str, Any] = {
        "code": coupon_code(secret, journey.journey_id, incentives.code_prefix)
    }
    if offer.percent is not None:
        coupon["percent"] = offer.percent
    if offer.amount is not None:
        coupon["amount"] = str(offer.amount)
    if offer.currency is not None:
        coupon["currency"] = offer.currency
    if offer.min_order is not None:
        coupon["min_order"] = str(offer.min_order)
    coupon["expires_at"] = format_ms(step.due_ms + incentives.valid_for_ms)
    return coupon


def top_product(viewed: object) -> dict[str, Any] | None:
    """The most-viewed product of a browse (the most recent of equals), empty fields dropped."""
    products = _clean(viewed)  # most recent first
    if not products:
        return None
    return max(products, key=lambda p: p.get("views", 0) if isinstance(p.get("views"), int) else 0)


def incentive_value(journey: Journey, shown: Shown | None = None) -> Decimal | None:
    """What a coupon's tier is chosen by: the cart's value (as shown, when the catalogue
    changed it), or for a journey without a cart the price of the product it is about."""
    if shown is not None and shown.value is not None:
        return cart_value({"value": shown.value})
    value = cart_value(journey.cart)
    if value is not None or journey.kind in CART_KINDS:
        return value
    product = top_product(shown.viewed if shown else journey.viewed_products)
    return cart_value({"value": product.get("price")}) if product else None


def incentive_currency(journey: Journey, shown: Shown | None = None) -> str | None:
    """The currency the incentive value is in: the cart's, or for a journey without a cart
    the currency of the product it is about (None when nobody said)."""
    currency = journey.cart.get("currency")
    if journey.kind not in CART_KINDS and not currency:
        product = top_product(shown.viewed if shown else journey.viewed_products)
        currency = product.get("currency") if product else None
    return currency.upper() if isinstance(currency, str) and currency else None


def _clean(items: object) -> list[dict[str, Any]]:
    """Line items without their empty fields (a template tests ``is defined``, not None)."""
    if not isinstance(items, list):
        return []
    return [
        {k: v for k, v in item.items() if v is not None} for item in items if isinstance(item, dict)
    ]


def _moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
