"""The ``shopify`` provider: each code a discount of the shop, through the Admin GraphQL API.

``discountCodeBasicCreate`` (an amount-off code discount: a percentage, or a fixed amount in
the shop's currency) at ``<CARTPULSE_COUPON_SHOPIFY_URL>/admin/api/<version>/graphql.json``
with the ``X-Shopify-Access-Token`` header (scope ``write_discounts``). The request follows
Shopify's published Admin schema (``DiscountCodeBasicInput``, up to API version 2025-07, where
``customerSelection`` chooses the buyers; tests/fixtures/shopify_discounts.graphql holds the
types used, and the test server validates every request against them):

* ``code``, ``title`` (``cartpulse <code>``), ``startsAt`` (issued), ``endsAt`` (expiry);
* ``usageLimit: 1`` and ``appliesOncePerCustomer: true``: single use;
* ``customerSelection: {all: true}``: cartpulse's customer ids are not Shopify's, and a
  code nobody else can guess needs no narrower selection;
* ``customerGets``: ``{percentage: 0.1}`` or ``{discountAmount: {amount, appliesOnEachItem:
  false}}`` on ``items: {all: true}``;
* ``minimumRequirement.subtotal.greaterThanOrEqualToSubtotal`` when the tier has a min_order;
* ``combinesWith`` all false: the code stacks with no other discount.

Answers: a ``codeDiscountNode`` is registered; a ``userErrors`` entry with code ``TAKEN`` on
the code means it exists already (a retry after a lost answer): registered; other user errors
refuse the code. HTTP 429, 5xx, a ``THROTTLED`` error, a timeout, 401/403 (a token being fixed)
are retried with back-off.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import aiohttp
import orjson

from senders.core.outcomes import retry_after_seconds
from senders.coupons.ports import Registration
from streams.contract.commands import format_time
from streams.contract.coupons import CouponRecord
from streams.contract.errors import ConfigurationError
from streams.runtime.settings import Settings

MUTATION = """\
mutation cartpulseCoupon($basicCodeDiscount: DiscountCodeBasicInput!) {
  discountCodeBasicCreate(basicCodeDiscount: $basicCodeDiscount) {
    codeDiscountNode { id }
    userErrors { field code message }
  }
}
"""
RETRY_STATUSES = frozenset({401, 403, 429})


def discount_input(coupon: CouponRecord) -> dict[str, Any]:
    """``DiscountCodeBasicInput`` for ``coupon`` (pure)."""
    value: dict[str, Any]
    if coupon.percent is not None:
        value = {"percentage": coupon.percent / 100}
    else:
        value = {"discountAmount": {"amount": str(coupon.amount), "appliesOnEachItem": False}}
    data: dict[str, Any] = {
        "title": f"cartpulse {coupon.code}",
        "code": coupon.code,
        "startsAt": format_time(coupon.issued_at),
        "endsAt": format_time(coupon.expires_at),
        "usageLimit": 1,
        "appliesOncePerCustomer": True,
        "customerSelection": {"all": True},
        "customerGets": {"value": value, "items": {"all": True}},
        "combinesWith": {
            "orderDiscounts": False,
            "productDiscounts": False,
            "shippingDiscounts": False,
        },
    }
    if coupon.min_order is not None:
        data["minimumRequirement"] = {
            "subtotal": {"greaterThanOrEqualToSubtotal": str(coupon.min_order)}
        }
    return data


def request_body(coupon: CouponRecord) -> bytes:
    return orjson.dumps(
        {"query": MUTATION, "variables": {"basicCodeDiscount": discount_input(coupon)}}
    )


def read_answer(status: int, body: bytes, wait: float | None) -> Registration:
    """What Shopify's answer to ``discountCodeBasicCreate`` says (pure)."""
    if status in RETRY_STATUSES or status >= 500:
        return Registration("retry", f"shopify {status}", wait)
    if status != 200:
        return Registration("refused", f"shopify {status}: {body[:200]!r}")
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return Registration("retry", "shopify answered no JSON")
    errors = answer.get("errors") if isinstance(answer, dict) else None
    if errors:
        codes = {(e.get("extensions") or {}).get("code") for e in errors if isinstance(e, dict)}
        if "THROTTLED" in codes:
            return Registration("retry", "shopify THROTTLED", wait or 1.0)
        return Registration("refused", f"shopify errors: {str(errors)[:300]}")
    payload = ((answer.get("data") or {}).get("discountCodeBasicCreate")) or {}
    user_errors = payload.get("userErrors") or []
    if any(e.get("code") == "TAKEN" and "code" in (e.get("field") or []) for e in user_errors):
        return Registration("registered", "shopify: the code exists already")
    if user_errors:
        messages = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in user_errors)
        return Registration("refused", f"shopify: {messages}"[:500])
    node = payload.get("codeDiscountNode") or {}
    if node.get("id"):
        return Registration("registered", str(node["id"]))
    return Registration("retry", "shopify answered neither a discount nor an error")


class ShopifyProvider:
    name = "shopify"

    def __init__(self, settings: Settings) -> None:
        token = settings.coupon_shopify_token.get_secret_value()
        if not settings.coupon_shopify_url or not token:
            raise ConfigurationError(
                "a store's coupon_provider is shopify: set CARTPULSE_COUPON_SHOPIFY_URL "
                "(https://<shop>.myshopify.com) and CARTPULSE_COUPON_SHOPIFY_TOKEN"
            )
        version = settings.coupon_shopify_api_version
        self.endpoint = f"{settings.coupon_shopify_url}/admin/api/{version}/graphql.json"
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=settings.coupon_webhook_timeout.total_seconds())
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self._timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def register(self, coupon: CouponRecord, now: datetime) -> Registration:
        assert self._session is not None, "start() first"  # noqa: S101 - a wiring error
        headers = {"Content-Type": "application/json", "X-Shopify-Access-Token": self._token}
        try:
            async with self._session.post(
                self.endpoint, data=request_body(coupon), headers=headers
            ) as response:
                status = response.status
                wait = retry_after_seconds(response.headers.get("Retry-After"))
                body = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Registration("retry", f"shopify unreachable: {type(exc).__name__}")
        return read_answer(status, body, wait)
