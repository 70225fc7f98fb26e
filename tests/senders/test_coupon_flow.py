"""Coupons on the real stack: Kafka, Redis, ``cartpulse coupons`` and an email sender in this
process, and each store's coupon endpoint stood in for by a local server that checks the
request (tests/coupon_servers.py).

A command carrying a coupon waits until the registrar has registered its code with the
store's provider, then goes out with that code; a code the store refuses is never sent
(``coupon_unavailable``); a completed order redeems the code and a second order's use is
reported (``reused``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from senders.coupons.service import run_coupons
from senders.runtime.app import run_sender
from streams.contract.commands import SendCommand
from streams.contract.coupons import CouponRecord, issued_coupon, parse_coupon
from streams.contract.topics import Topic, TopicCatalogue
from streams.runtime.kafka import create_topics
from streams.runtime.policy_file import default_policy_text
from streams.runtime.settings import Settings
from tests.conftest import consume_all
from tests.coupon_servers import ShopifyTestServer, WebhookTestServer
from tests.senders.conftest import (
    command,
    ensure_topics,
    kafka_producer,
    produce_commands,
    results,
    running,
    sender_settings,
)
from tests.smtp_server import SmtpTestServer

pytestmark = pytest.mark.integration

WEBHOOK_SECRET = "coupon-webhook-test-secret"
SHOPIFY_TOKEN = "shpat_test_token"


def coupon_command(code: str, **coupon: Any) -> SendCommand:
    now = datetime.now(UTC)
    offer = coupon or {"percent": 10, "currency": "USD"}
    return command(
        "email",
        to=f"{code.lower()}@example.com",
        template="cart_email_2",
        variables={
            "first_name": "Ann",
            "store_name": "Cartpulse Shop",
            "store_postal_address": "Cartpulse Shop, 100 Example Street, Springfield, NY 10001",
            "cart_url": "https://shop.example.com/cart/1",
            "cart_currency": "USD",
            "cart_items": [
                {"product_id": "p1", "name": "Blue Mug", "quantity": 1, "price": "120.00"}
            ],
            "coupon": {
                "code": code,
                **offer,
                "expires_at": (now + timedelta(hours=72)).isoformat(),
            },
        },
    )


def plain_text(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def policy_file(tmp_path: Path, provider: str) -> Path:
    text = default_policy_text().replace(
        "[stores.default]\n", f'[stores.default]\ncoupon_provider = "{provider}"\n', 1
    )
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


async def coupons_on_topic(settings: Settings, expected: int) -> dict[str, list[CouponRecord]]:
    topic = TopicCatalogue.of(settings).name(Topic.COUPONS)
    found: dict[str, list[CouponRecord]] = {}
    for record in await consume_all(settings, topic, expected, within=30):
        coupon = parse_coupon(record.value)
        found.setdefault(coupon.code, []).append(coupon)
    return found


async def issue(settings: Settings, cmd: SendCommand) -> None:
    """What the journeys shell does beside the command: the issued coupon on ``coupons``."""
    coupon = issued_coupon(cmd)
    assert coupon is not None
    async with kafka_producer(settings) as kafka:
        topic = TopicCatalogue.of(settings).name(Topic.COUPONS)
        await kafka.send_and_wait(topic, key=coupon.code.encode(), value=coupon.to_json())


async def wait_for(check: Callable[[], bool], within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


@pytest.fixture
async def webhook() -> AsyncIterator[WebhookTestServer]:
    server = WebhookTestServer(WEBHOOK_SECRET)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def shopify() -> AsyncIterator[ShopifyTestServer]:
    server = ShopifyTestServer(SHOPIFY_TOKEN)
    await server.start()
    yield server
    await server.stop()


def coupon_settings(
    base: Settings,
    key_prefix: str,
    smtp: SmtpTestServer,
    policy: Path,
    webhook: WebhookTestServer | None = None,
    shopify: ShopifyTestServer | None = None,
) -> Settings:
    extra: dict[str, Any] = {
        "policy_file": policy,
        "coupon_recheck": timedelta(milliseconds=300),
        "sender_inline_wait": timedelta(milliseconds=500),
    }
    if webhook is not None:
        extra |= {"coupon_webhook_url": webhook.url, "coupon_webhook_secret": WEBHOOK_SECRET}
    if shopify is not None:
        extra |= {
            "coupon_shopify_url": shopify.base_url,
            "coupon_shopify_token": SecretStr(SHOPIFY_TOKEN),
        }
    return sender_settings(base, key_prefix, smtp=smtp, **extra)


async def ensure_coupon_topics(settings: Settings) -> None:
    await ensure_topics(settings, "email")
    topics = TopicCatalogue.of(settings)
    wanted = {topics.name(Topic.COUPONS), topics.dlq(Topic.COUPONS), topics.name(Topic.ORDERS)}
    await create_topics(settings, [s for s in topics.specs() if s.name in wanted])


@pytest.mark.parametrize("provider", ["topic", "webhook", "shopify"])
async def test_a_coupon_message_waits_for_its_code_to_be_registered(
    provider: str,
    settings: Settings,
    key_prefix: str,
    redis: Redis,
    smtp: SmtpTestServer,
    webhook: WebhookTestServer,
    shopify: ShopifyTestServer,
    tmp_path: Path,
) -> None:
    s = coupon_settings(
        settings, key_prefix, smtp, policy_file(tmp_path, provider), webhook, shopify
    )
    await ensure_coupon_topics(s)
    percent = coupon_command(f"CP-{provider.upper()}1")
    amount = coupon_command(f"CP-{provider.upper()}2", amount="30", currency="USD", min_order="100")
    webhook.fail_next = 2  # the webhook store is down for a moment: retried with back-off

    async with running(lambda stop: run_sender(s, "email", stop=stop, handle_signals=False)):
        await produce_commands(s, [percent, amount])
        await asyncio.sleep(3.0)  # the sender holds both: nobody registered their codes
        assert smtp.messages == []
        assert await results(s, 0, within=1.0) == []
        async with running(lambda stop: run_coupons(s, stop=stop, handle_signals=False)):
            await issue(s, percent)
            await issue(s, amount)
            found = {r.command_id: r for r in await results(s, 2, within=60.0)}

    assert {found[c.command_id].status for c in (percent, amount)} == {"sent"}
    texts = {m.message["X-Cartpulse-Command"]: plain_text(m.message) for m in smtp.messages}
    assert len(texts) == 2
    for cmd in (percent, amount):
        assert cmd.variables["coupon"]["code"] in texts[cmd.command_id]
    assert "$30.00 off your order" in texts[amount.command_id]
    assert "On orders of $100.00 or more" in texts[amount.command_id]

    states = await coupons_on_topic(s, 4)
    for cmd in (percent, amount):
        [*_, last] = states[cmd.variables["coupon"]["code"]]
        assert (last.status, last.provider) == ("registered", provider)
    if provider == "webhook":
        assert set(webhook.coupons) == {"CP-WEBHOOK1", "CP-WEBHOOK2"}
        assert [status for status, _ in webhook.requests].count(503) == 2
        assert webhook.refused == []
        assert webhook.coupons["CP-WEBHOOK2"]["amount"] == "30"
    if provider == "shopify":
        assert set(shopify.discounts) == {"CP-SHOPIFY1", "CP-SHOPIFY2"}
        first, second = shopify.discounts["CP-SHOPIFY1"], shopify.discounts["CP-SHOPIFY2"]
        assert first["customerGets"]["value"] == {"percentage": 0.1}
        assert (first["usageLimit"], first["appliesOncePerCustomer"]) == (1, True)
        assert second["customerGets"]["value"]["discountAmount"]["amount"] == "30"
        assert second["minimumRequirement"] == {"subtotal": {"greaterThanOrEqualToSubtotal": "100"}}
        assert all("errors" not in r for r in shopify.requests)


async def test_a_code_the_store_refuses_is_never_sent(
    settings: Settings,
    key_prefix: str,
    redis: Redis,
    smtp: SmtpTestServer,
    webhook: WebhookTestServer,
    tmp_path: Path,
) -> None:
    s = coupon_settings(settings, key_prefix, smtp, policy_file(tmp_path, "webhook"), webhook)
    await ensure_coupon_topics(s)
    refused = coupon_command("CP-REFUSED")
    webhook.refuse_codes.add("CP-REFUSED")
    async with (
        running(lambda stop: run_coupons(s, stop=stop, handle_signals=False)),
        running(lambda stop: run_sender(s, "email", stop=stop, handle_signals=False)),
    ):
        await issue(s, refused)
        await produce_commands(s, [refused])
        [result] = await results(s, 1, within=60.0)
    assert (result.status, result.error_code) == ("suppressed", "coupon_unavailable")
    assert smtp.messages == []
    [*_, last] = (await coupons_on_topic(s, 2))["CP-REFUSED"]
    assert last.status == "unavailable" and "422" in (last.reason or "")


def order_event(order_id: str, customer: str, codes: list[Any]) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"ev-{order_id}",
            "type": "order_completed",
            "occurred_at": datetime.now(UTC).isoformat(),
            "session_id": f"s-{order_id}",
            "customer_id": customer,
            "order": {"id": order_id, "value": "120.00", "currency": "USD",
                      "discount_codes": codes},
        }
    )  # fmt: skip


async def test_a_redemption_and_a_reuse_are_reported(
    settings: Settings,
    key_prefix: str,
    redis: Redis,
    smtp: SmtpTestServer,
    tmp_path: Path,
) -> None:
    s = coupon_settings(settings, key_prefix, smtp, policy_file(tmp_path, "topic"))
    await ensure_coupon_topics(s)
    cmd = coupon_command("CP-REDEEM")
    orders = TopicCatalogue.of(s).name(Topic.ORDERS)
    async with running(lambda stop: run_coupons(s, stop=stop, handle_signals=False)):
        await issue(s, cmd)
        await coupons_on_topic(s, 2)  # issued, registered
        async with kafka_producer(s) as kafka:
            # the shopper's order, redelivered; then someone else's with the same code
            first = order_event("o-1", cmd.customer_id, [{"code": "cp-redeem", "amount": "12"}])
            await kafka.send_and_wait(orders, key=cmd.customer_id.encode(), value=first)
            await kafka.send_and_wait(orders, key=cmd.customer_id.encode(), value=first)
            again = order_event("o-2", "someone-else", ["CP-REDEEM", "NOT-OURS"])
            await kafka.send_and_wait(orders, key=b"someone-else", value=again)
        states = await coupons_on_topic(s, 4)
    records = states["CP-REDEEM"]
    assert [r.status for r in records] == ["issued", "registered", "redeemed", "reused"]
    redeemed, reused = records[2], records[3]
    assert (redeemed.redeemed_order_id, redeemed.redeemed_by) == ("o-1", cmd.customer_id)
    assert [(r.order_id, r.customer_id) for r in reused.reuses] == [("o-2", "someone-else")]
    assert "NOT-OURS" not in states
