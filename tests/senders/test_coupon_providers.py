"""The coupon providers against the local stand-ins of their endpoints, and the senders' gate.

The stand-ins check requests the way the real endpoints would (tests/coupon_servers.py); these
tests also show that they refuse what does not match, so a passing provider test means the
request has the published shape."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
import pytest
from pydantic import SecretStr

from senders.coupons.gate import verdict
from senders.coupons.shopify import MUTATION, ShopifyProvider, discount_input, read_answer
from senders.coupons.webhook import WebhookProvider, sign
from streams.contract.coupons import CouponRecord
from streams.runtime.settings import load_settings
from tests.coupon_servers import ShopifyTestServer, WebhookTestServer
from tests.senders.conftest import command

NOW = datetime.now(UTC).replace(microsecond=0)


def coupon(code: str = "CP-ABC", **fields: Any) -> CouponRecord:
    data: dict[str, Any] = {
        "code": code, "customer_id": "c1", "journey_id": "jr-1", "store_id": "default",
        "percent": 10, "currency": "USD", "issued_at": NOW,
        "expires_at": NOW + timedelta(hours=72),
    }  # fmt: skip
    return CouponRecord.model_validate(data | fields)


@pytest.fixture
async def shopify() -> AsyncIterator[ShopifyTestServer]:
    server = ShopifyTestServer("shpat_x")
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def webhook() -> AsyncIterator[WebhookTestServer]:
    server = WebhookTestServer("s3cret")
    await server.start()
    yield server
    await server.stop()


async def test_shopify_creates_a_single_use_code_once(shopify: ShopifyTestServer) -> None:
    provider = ShopifyProvider(
        load_settings(
            coupon_shopify_url=shopify.base_url, coupon_shopify_token=SecretStr("shpat_x")
        )
    )
    await provider.start()
    try:
        first = await provider.register(coupon(), NOW)
        again = await provider.register(coupon(), NOW)  # a retry after a lost answer
        amount = coupon("CP-AMT", percent=None, amount=Decimal("5"), min_order=Decimal("50"))
        third = await provider.register(amount, NOW)
        shopify.throttle_next = 1
        throttled = await provider.register(coupon("CP-LATER"), NOW)
    finally:
        await provider.close()
    assert (first.kind, first.detail) == ("registered", "gid://shopify/DiscountCodeNode/1")
    assert (again.kind, again.detail) == ("registered", "shopify: the code exists already")
    assert third.kind == "registered"
    assert (throttled.kind, throttled.retry_after) == ("retry", 1.0)
    created = shopify.discounts["CP-AMT"]
    assert created["customerGets"]["value"] == {
        "discountAmount": {"amount": "5", "appliesOnEachItem": False}
    }
    assert created["minimumRequirement"]["subtotal"]["greaterThanOrEqualToSubtotal"] == "50"


async def test_the_shopify_stand_in_refuses_what_the_schema_refuses(
    shopify: ShopifyTestServer,
) -> None:
    url = f"{shopify.base_url}/admin/api/2025-07/graphql.json"
    headers = {"X-Shopify-Access-Token": "shpat_x"}
    good = discount_input(coupon())
    wrong_field = {**good, "customerContext": {"all": True}}  # not in DiscountCodeBasicInput
    wrong_type = {**good, "usageLimit": "one"}
    bad_time = {**good, "startsAt": "yesterday"}
    no_title = {k: v for k, v in good.items() if k != "title"}
    answers = []
    async with aiohttp.ClientSession() as session:
        for variables in (wrong_field, wrong_type, bad_time, no_title):
            body = {"query": MUTATION, "variables": {"basicCodeDiscount": variables}}
            async with session.post(url, json=body, headers=headers) as response:
                answers.append(read_answer(response.status, await response.read(), None))
        async with session.post(url, json={"query": "mutation { nope }"}, headers=headers) as r:
            answers.append(read_answer(r.status, await r.read(), None))
        async with session.post(url, json={"query": MUTATION}, headers={}) as r:
            assert r.status == 401
    assert [a.kind for a in answers] == ["refused"] * 5
    assert "BLANK" in (answers[3].detail or "")
    assert shopify.discounts == {}


async def test_the_webhook_is_signed_idempotent_and_retried(webhook: WebhookTestServer) -> None:
    provider = WebhookProvider(
        load_settings(coupon_webhook_url=webhook.url, coupon_webhook_secret=SecretStr("s3cret"))
    )
    forged = WebhookProvider(
        load_settings(coupon_webhook_url=webhook.url, coupon_webhook_secret=SecretStr("guess"))
    )
    await provider.start()
    await forged.start()
    # The signature's timestamp is this moment: the server refuses one over 5 minutes old, and
    # NOW is when the module was collected, which can be longer ago than that in a full run.
    now = datetime.now(UTC)
    try:
        webhook.fail_next = 1
        down = await provider.register(coupon(), now)
        first = await provider.register(coupon(), now)
        again = await provider.register(coupon(), now)
        webhook.refuse_codes.add("CP-NO")
        refused = await provider.register(coupon("CP-NO"), now)
        bad = await forged.register(coupon("CP-FORGED"), now)
    finally:
        await provider.close()
        await forged.close()
    assert (down.kind, down.retry_after) == ("retry", 0.2)
    assert (first.kind, again.kind) == ("registered", "registered")
    assert list(webhook.coupons) == ["CP-ABC"]
    assert webhook.coupons["CP-ABC"] == orjson.loads(coupon().to_json())
    assert refused.kind == "refused" and "422" in (refused.detail or "")
    assert bad.kind == "refused" and webhook.refused[-1] == "bad signature"


def test_the_signature_covers_the_timestamp_and_the_body() -> None:
    mac = hmac.new(b"k", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert sign(b"k", 1700000000, b"{}") == f"t=1700000000,v1={mac}"
    assert sign(b"k", 1700000001, b"{}") != sign(b"k", 1700000000, b"{}")


def registered(**fields: Any) -> CouponRecord:
    return coupon(status="registered", **fields)


@pytest.mark.parametrize(
    ("state", "action", "reason"),
    [
        (None, "wait", None),
        (coupon(), "wait", None),  # issued, not registered yet
        (registered(), "send", None),
        (registered(percent=15), "unavailable", "registered with another offer"),
        (coupon(status="unavailable", reason="webhook 422"), "unavailable", "webhook 422"),
        (coupon(status="redeemed"), "unavailable", "already redeemed"),
        (coupon(status="reused"), "unavailable", "already reused"),
    ],
)
def test_the_gate_sends_only_a_registered_code_with_the_same_offer(
    state: CouponRecord | None, action: str, reason: str | None
) -> None:
    cmd = command("email", to="ann@example.com", created_at=NOW.isoformat())
    offer = {"code": "CP-ABC", "percent": 10, "currency": "USD",
             "expires_at": (NOW + timedelta(hours=72)).isoformat()}  # fmt: skip
    said = verdict(offer, state, cmd, NOW.timestamp() + 1, 3600.0)
    assert (said.action, said.reason) == (action, reason)


def test_the_gate_stops_waiting_when_the_wait_or_the_coupon_runs_out() -> None:
    cmd = command("email", to="ann@example.com", created_at=NOW.isoformat())
    offer = {"code": "CP-ABC", "percent": 10, "currency": "USD",
             "expires_at": (NOW + timedelta(hours=1)).isoformat()}  # fmt: skip
    waiting = verdict(offer, None, cmd, NOW.timestamp() + 10, 60.0)
    assert (waiting.action, waiting.until) == ("wait", NOW.timestamp() + 60)
    assert verdict(offer, None, cmd, NOW.timestamp() + 61, 60.0).action == "unavailable"
    late = verdict(offer, registered(), cmd, NOW.timestamp() + 3601, 60.0)
    assert (late.action, late.reason) == ("unavailable", "expired")
