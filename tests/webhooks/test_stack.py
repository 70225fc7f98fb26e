"""The webhooks service on the real stack: Kafka, Redis, the consent mirror, an SMS sender
replica and the Twilio test server, all in this process."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import orjson
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from senders.adapters.consents import ConsentStore, address_subject
from senders.adapters.phonebook import PhoneBook
from senders.adapters.smtp_email import SmtpEmail
from senders.core.keys import Keys
from senders.messages.templates import Renderer
from senders.runtime.app import run_mirror, run_sender
from senders.webhooks.dedup import RedisDeduplicator
from senders.webhooks.service import run_webhooks
from streams.runtime.settings import Settings
from tests.conftest import consume_all
from tests.senders.conftest import (
    command,
    ensure_topics,
    kafka_producer,
    opt_in,
    produce_commands,
    results,
    running,
    sender_settings,
    until_mirrored,
)
from tests.support.net import free_port
from tests.support.webhooks import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    CLICK_SECRET,
    PUBLIC_URL,
    inbound_form,
    sign,
)
from tests.twilio_server import TwilioTestServer

pytestmark = pytest.mark.integration


def webhook_settings(
    settings: Settings, key_prefix: str, twilio: Any = None, **overrides: Any
) -> Settings:
    return sender_settings(
        settings,
        key_prefix,
        twilio,
        webhooks_host="127.0.0.1",
        webhooks_port=free_port(),
        webhooks_metrics_port=free_port(),
        webhooks_public_url=PUBLIC_URL,
        twilio_status_callback=f"{PUBLIC_URL}/twilio/status",
        click_secret=SecretStr(CLICK_SECRET.decode()),
        webhooks_redirect_hosts={"store-1": ("shop.example.com",)},
        **overrides,
    )


def webhooks(s: Settings, started: asyncio.Event) -> Callable[[asyncio.Event], Awaitable[None]]:
    return lambda stop: run_webhooks(s, stop=stop, handle_signals=False, started=started)


@contextlib.asynccontextmanager
async def sms_stack(
    s: Settings, redis: Redis, key_prefix: str, customers: Sequence[str]
) -> AsyncIterator[asyncio.Event]:
    """An SMS sender replica, the consent mirror and the webhooks service running on ``s``;
    enters once each of ``customers`` has opted in to SMS and the mirror has recorded it, and
    yields the event set when the webhooks service serves."""
    await ensure_topics(s, "sms")
    mirror_settings = s.model_copy(update={"sender_http_port": 0})
    store = ConsentStore(redis, Keys(key_prefix))
    started = asyncio.Event()
    async with running(
        lambda stop: run_sender(s, "sms", stop=stop, handle_signals=False),
        lambda stop: run_mirror(mirror_settings, stop=stop, handle_signals=False),
        webhooks(s, started),
    ):
        async with kafka_producer(s) as kafka:
            for customer in customers:
                await opt_in(kafka, s, customer, "sms")
        await until_mirrored(store, dict.fromkeys(customers, "opted_in"), within=30)
        yield started


async def post_twilio(
    s: Settings, path: str, form: dict[str, str], headers: dict[str, str] | None = None
) -> tuple[int, str]:
    signature = sign(f"{PUBLIC_URL}{path}", form, AUTH_TOKEN)
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"http://127.0.0.1:{s.webhooks_port}{path}",
            data=urlencode(form),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature,
                **(headers or {}),
            },
        ) as answer,
    ):
        return answer.status, await answer.text()


async def wait_for(check: Callable[[], Awaitable[bool]], within: float) -> float:
    """Seconds until ``check`` held; fails the test past ``within``."""
    started = time.perf_counter()
    while not await check():
        assert time.perf_counter() - started < within, f"not within {within}s"
        await asyncio.sleep(0.01)
    return time.perf_counter() - started


async def test_a_stop_reaches_the_senders_within_a_second_and_pending_sms_end_suppressed(
    settings: Settings, key_prefix: str, redis: Redis, twilio: TwilioTestServer
) -> None:
    s = webhook_settings(settings, key_prefix, twilio)
    number = "+14155550301"
    first = command(to=number)
    customer = first.customer_id
    in_four_seconds = (datetime.now(UTC) + timedelta(seconds=4)).isoformat()
    pending = command(to=number, customer_id=customer, not_before=in_four_seconds)
    # another customer at the same number, never texted there before: the number's own
    # opt-out stops it too
    sibling = command(to=number, not_before=in_four_seconds)
    store = ConsentStore(redis, Keys(key_prefix))
    async with sms_stack(s, redis, key_prefix, [first.customer_id, sibling.customer_id]) as started:
        await produce_commands(s, [first])
        [sent] = await results(s, 1)
        assert sent.status == "sent"
        await produce_commands(s, [pending, sibling])
        await asyncio.wait_for(started.wait(), 30)

        status, reply = await post_twilio(s, "/twilio/sms", inbound_form(" Stop ", sender=number))
        posted = time.perf_counter()
        assert status == 200 and reply.endswith("<Response></Response>")

        async def opted_out() -> bool:
            consent = await store.get(customer, "sms")
            return consent is not None and consent.status == "opted_out"

        seen_after = await wait_for(opted_out, 1.0)
        assert time.perf_counter() - posted < 1.0 and seen_after < 1.0
        found = await results(s, 3)

    by_id = {r.command_id: r for r in found}
    assert (by_id[pending.command_id].status, by_id[pending.command_id].error_code) == (
        "suppressed",
        "opted_out",
    )
    assert (by_id[sibling.command_id].status, by_id[sibling.command_id].error_code) == (
        "suppressed",
        "opted_out",
    )
    assert [r.form["To"] for r in twilio.requests] == [number]  # only the first one went out

    # The ledger: the number and the customer texted at it, with the evidence.
    consents = await consume_all(s, f"{s.topic_prefix}consents", 4)
    stops = {r.key: orjson.loads(r.value) for r in consents if b"sms_keyword" in r.value}
    assert set(stops) == {
        f"{customer}:sms".encode(),
        f"{address_subject(number)}:sms".encode(),
    }
    for record in stops.values():
        assert record["status"] == "opted_out"
        assert record["evidence"]["form"]["From"] == [number]
        assert record["evidence"]["keyword"] == "STOP"
        assert record["evidence"]["resolved_customers"] == [customer]


async def test_a_stop_from_an_unknown_number_is_kept_and_honoured(
    settings: Settings, key_prefix: str, redis: Redis, twilio: TwilioTestServer
) -> None:
    s = webhook_settings(settings, key_prefix, twilio, sms_require_opt_in=False)
    await ensure_topics(s, "sms")
    number = "+447700900301"
    started = asyncio.Event()
    async with running(
        lambda stop: run_sender(s, "sms", stop=stop, handle_signals=False), webhooks(s, started)
    ):
        await asyncio.wait_for(started.wait(), 30)
        status, _ = await post_twilio(s, "/twilio/sms", inbound_form("QUIT", sender=number))
        assert status == 200
        later = command(to=number)
        await produce_commands(s, [later])
        [result] = await results(s, 1)
        # START from the number opts it back in
        status, _ = await post_twilio(
            s, "/twilio/sms", inbound_form("unstop", sender=number, sid="SM" + "c" * 32)
        )
        assert status == 200
        again = command(to=number)
        await produce_commands(s, [again])
        found = {r.command_id: r for r in await results(s, 2)}
    assert (result.status, result.error_code) == ("suppressed", "opted_out")
    assert found[again.command_id].status == "sent"
    consents = await consume_all(s, f"{s.topic_prefix}consents", 2)
    assert [r.key for r in consents] == [f"{address_subject(number)}:sms".encode()] * 2
    assert [orjson.loads(r.value)["status"] for r in consents] == ["opted_out", "opted_in"]


async def test_an_opt_out_written_with_invisible_and_full_width_characters_is_recorded(
    settings: Settings, key_prefix: str, redis: Redis
) -> None:
    s = webhook_settings(settings, key_prefix)
    number = "+14155550306"
    store = ConsentStore(redis, Keys(key_prefix))
    started = asyncio.Event()
    async with running(webhooks(s, started)):
        await asyncio.wait_for(started.wait(), 30)
        body = "\ufeff\uff33\uff34\uff2f\uff30\u200b?"  # BOM, full-width STOP, ZWSP, ?
        status, reply = await post_twilio(s, "/twilio/sms", inbound_form(body, sender=number))
        assert status == 200 and reply.endswith("<Response></Response>")
        consent = await store.get(address_subject(number), "sms")
        assert consent is not None and consent.status == "opted_out"
        status, _ = await post_twilio(
            s, "/twilio/sms", inbound_form("opt-out", sender="+14155550307", sid="SM" + "7" * 32)
        )
        assert status == 200
    records = await consume_all(s, f"{s.topic_prefix}consents", 2)
    found = {r.key: orjson.loads(r.value) for r in records}
    assert set(found) == {
        f"{address_subject(number)}:sms".encode(),
        f"{address_subject('+14155550307')}:sms".encode(),
    }
    assert [r["status"] for r in found.values()] == ["opted_out", "opted_out"]
    assert sorted(r["evidence"]["keyword"] for r in found.values()) == ["OPTOUT", "STOP"]


async def test_a_replayed_status_callback_is_recorded_once(
    settings: Settings, key_prefix: str, redis: Redis
) -> None:
    s = webhook_settings(settings, key_prefix)
    started = asyncio.Event()
    form = {
        "MessageSid": "SM" + "d" * 32,
        "MessageStatus": "undelivered",
        "ErrorCode": "30003",
        "To": "+14155550302",
        "AccountSid": ACCOUNT_SID,
    }
    path = "/twilio/status?command_id=cmd-1"
    async with running(webhooks(s, started)):
        await asyncio.wait_for(started.wait(), 30)
        answers = await asyncio.gather(
            *(post_twilio(s, path, form, {"I-Twilio-Idempotency-Token": "t-1"}) for _ in range(3))
        )
        answers += [await post_twilio(s, path, form) for _ in range(2)]
        delivered = {**form, "MessageStatus": "delivered", "MessageSid": "SM" + "e" * 32}
        answers.append(await post_twilio(s, "/twilio/status?command_id=cmd-2", delivered))
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{s.webhooks_port}"
            assert (await http.get(f"{base}/healthz")).status == 200
            assert (await http.get(f"{base}/readyz")).status == 200
            private = f"http://127.0.0.1:{s.webhooks_metrics_port}"
            metrics = await (await http.get(f"{private}/metrics")).text()
    # concurrent retries may be asked to come back (503), never recorded twice
    assert {status for status, _ in answers} <= {200, 503}
    found = await results(s, 2, within=10)
    assert sorted((r.command_id, r.status) for r in found) == [
        ("cmd-1", "undelivered"),
        ("cmd-2", "delivered"),
    ]
    assert sorted((r.command_id, r.error_code) for r in found) == [
        ("cmd-1", "30003"),
        ("cmd-2", "30003"),  # the delivered callback repeats the form's ErrorCode
    ]
    assert 'cartpulse_webhook_delivery_reports_total{status="undelivered"} 1.0' in metrics


async def test_the_email_senders_unsubscribe_link_and_clicks(
    settings: Settings, key_prefix: str, redis: Redis
) -> None:
    s = webhook_settings(settings, key_prefix, email_click_tracking=True)
    started = asyncio.Event()
    cmd = command(channel="email", to="ann@example.com")
    built = SmtpEmail(s, Renderer(), Keys(key_prefix)).prepare(cmd, time.time())
    message = email.message_from_bytes(built.data, policy=email.policy.default)
    link = re.search(r"<(https://[^>]+)>", str(message["List-Unsubscribe"]))
    assert link is not None
    local = urlsplit(link.group(1))._replace(scheme="http", netloc=f"127.0.0.1:{s.webhooks_port}")
    store = ConsentStore(redis, Keys(key_prefix))
    # The cart link the email carries goes through the click redirect.
    text = next(p for p in message.walk() if p.get_content_type() == "text/plain").get_content()
    tracked = re.search(rf"{re.escape(PUBLIC_URL)}(/c/\S+)", text)
    assert tracked is not None and cmd.variables["cart_url"] not in text
    async with running(webhooks(s, started)):
        await asyncio.wait_for(started.wait(), 30)
        async with aiohttp.ClientSession() as http:
            page = await http.get(local.geturl())
            assert page.status == 200
            assert await store.get(cmd.customer_id, "email") is None  # GET only asks
            one_click = await http.post(
                local.geturl(),
                data="List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert one_click.status == 200
            click = await http.get(
                f"http://127.0.0.1:{s.webhooks_port}{tracked.group(1)}", allow_redirects=False
            )
            assert click.status == 302 and click.headers["Location"] == cmd.variables["cart_url"]
    consent = await store.get(cmd.customer_id, "email")
    assert consent is not None and (consent.status, consent.source) == (
        "opted_out",
        "email_one_click",
    )
    [record] = await consume_all(s, f"{s.topic_prefix}consents", 1)
    assert record.key == f"{cmd.customer_id}:email".encode()
    [clicked] = await consume_all(s, f"{s.topic_prefix}engagement", 1)
    assert clicked.key == cmd.customer_id.encode()
    assert orjson.loads(clicked.value)["command_id"] == cmd.command_id


async def test_the_open_pixel_of_an_email_records_the_open_on_engagement(
    settings: Settings, key_prefix: str
) -> None:
    s = webhook_settings(settings, key_prefix, email_click_tracking=True)
    started = asyncio.Event()
    cmd = command(channel="email", to="ann@example.com")
    built = SmtpEmail(s, Renderer(), Keys(key_prefix)).prepare(cmd, time.time())
    message = email.message_from_bytes(built.data, policy=email.policy.default)
    html = next(p for p in message.walk() if p.get_content_type() == "text/html").get_content()
    pixel = re.search(rf'src="{re.escape(PUBLIC_URL)}(/o/[^"]+)"', html)
    assert pixel is not None
    async with running(webhooks(s, started)):
        await asyncio.wait_for(started.wait(), 30)
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{s.webhooks_port}"
            for path in (pixel.group(1), "/o/forged.token"):
                answer = await http.get(f"{base}{path}", headers={"User-Agent": "TestMail/1"})
                assert answer.status == 200 and answer.content_type == "image/gif"
                assert len(await answer.read()) == 43
            private = f"http://127.0.0.1:{s.webhooks_metrics_port}"
            metrics = await (await http.get(f"{private}/metrics")).text()
    [opened] = await consume_all(s, f"{s.topic_prefix}engagement", 1)
    assert opened.key == cmd.customer_id.encode()
    event = orjson.loads(opened.value)
    assert (event["type"], event["channel"], event["command_id"], event["user_agent"]) == (
        "email_opened",
        "email",
        cmd.command_id,
        "TestMail/1",
    )
    assert 'cartpulse_webhook_opens_total{outcome="recorded"} 1.0' in metrics
    assert 'cartpulse_webhook_opens_total{outcome="invalid"} 1.0' in metrics


async def test_phone_book_and_deduplicator_on_redis(redis: Redis, key_prefix: str) -> None:
    keys = Keys(key_prefix)
    book = PhoneBook(redis, keys, timedelta(days=1), keep=3, refresh=timedelta(0))
    for i, customer in enumerate(["a", "b", "c", "a", "d"]):
        await book.remember("+14155550303", customer, 1000 + i)
    assert await book.customers("+14155550303") == ["d", "a", "c"]
    assert await book.customers("+14155550304") == []
    assert 0 < await redis.ttl(keys.phone("+14155550303")) <= 86_400
    assert "+1415" not in keys.phone("+14155550303")  # no PII in key names

    # The send path writes a pair again only once `refresh` has passed.
    cached = PhoneBook(redis, keys, timedelta(days=1), refresh=timedelta(minutes=1))
    await cached.remember("+14155550305", "a", 1_000)
    assert await cached.customers("+14155550305") == ["a"]
    await redis.delete(keys.phone("+14155550305"))
    await cached.remember("+14155550305", "a", 60_999)  # within the minute: no write
    assert await cached.customers("+14155550305") == []
    await cached.remember("+14155550305", "b", 60_999)  # another customer: written
    await cached.remember("+14155550305", "a", 61_000)
    assert await cached.customers("+14155550305") == ["a", "b"]

    seen = RedisDeduplicator(redis, keys, timedelta(minutes=5))
    assert await seen.claim("status", "SM1:delivered") == "new"
    assert await seen.claim("status", "SM1:delivered") == "pending"
    await seen.release("status", "SM1:delivered")
    assert await seen.claim("status", "SM1:delivered") == "new"
    await seen.done("status", "SM1:delivered")
    await seen.release("status", "SM1:delivered")  # a done one is never released
    assert await seen.claim("status", "SM1:delivered") == "done"
