"""Fixtures for the sender tests: the SMTP test server, sender settings pointing at it, the
Twilio test server and Redis (``tests/conftest.py`` gives those two, and ``key_prefix``), and
helpers to run senders and read results.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr
from redis.asyncio import Redis

from senders.adapters.consents import ConsentStore
from senders.adapters.heartbeat import BEAT_INTERVAL, MirrorHeartbeat
from senders.core.keys import Keys
from senders.runtime.app import sender_topics
from streams.contract.commands import FINAL_SEND_STATUSES, Channel, SendCommand, SendResult
from streams.runtime.kafka import create_topics, producer
from streams.runtime.settings import Settings
from tests.conftest import REDIS_PORT, consume_all
from tests.smtp_server import SmtpTestServer, make_certificate
from tests.support.webhooks import ACCOUNT_SID, AUTH_TOKEN
from tests.twilio_server import TwilioTestServer

FROM_NUMBER = "+15005550006"


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
async def smtp(certificate: tuple[Path, Path]) -> AsyncIterator[SmtpTestServer]:
    server = SmtpTestServer(*certificate)
    await server.start()
    yield server
    await server.stop()


def sender_settings(
    base: Settings,
    key_prefix: str,
    twilio: TwilioTestServer | Any | None = None,  # anything with a base_url
    smtp: SmtpTestServer | None = None,
    **overrides: Any,
) -> Settings:
    """Settings for senders against the local stack and the test servers."""
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": base.kafka_bootstrap_servers,
        "topic_prefix": base.topic_prefix,
        "topic_partitions": base.topic_partitions,
        "redis_url": SecretStr(f"redis://127.0.0.1:{REDIS_PORT}/0"),
        "redis_key_prefix": key_prefix,
        "sender_group": f"g{uuid.uuid4().hex[:8]}",
        "sender_session_timeout": timedelta(seconds=6),
        "sender_backoff_base": timedelta(milliseconds=100),
        "sender_backoff_max": timedelta(seconds=2),
        "sms_rate": 1000.0,
        "sms_burst": 50,
        "sms_account_rate": 1000.0,
        "sms_account_burst": 50,
        "email_rate": 1000.0,
        "email_burst": 50,
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": SecretStr(AUTH_TOKEN),
        "twilio_from": FROM_NUMBER,
        "twilio_status_callback": "https://hooks.example.com/twilio/status",
        "twilio_timeout": timedelta(seconds=2),
        "unsubscribe_secret": SecretStr("unsubscribe-test-secret"),
        "click_secret": SecretStr("click-test-secret"),  # also keys the SMS short links' ids
        "email_from": "Cartpulse Shop <shop@cartpulse.example>",
        "email_unsubscribe_url": "https://shop.example.com/unsubscribe",
        "email_unsubscribe_mailto": "unsubscribe@cartpulse.example",
    }
    if twilio is not None:
        values["twilio_api_base"] = twilio.base_url
    if smtp is not None:
        values |= {
            "smtp_port": smtp.port,
            "smtp_username": smtp.username,
            "smtp_password": SecretStr(smtp.password),
            "smtp_ca_file": smtp.cert,
            "smtp_security": "starttls",
            "smtp_timeout": timedelta(seconds=5),
        }
    values |= overrides
    return Settings(**values)


def command(
    channel: str = "sms",
    to: str = "+14155550100",
    template: str | None = None,
    customer_id: str | None = None,
    expires_in: float = 3600.0,
    **fields: Any,
) -> SendCommand:
    """A valid command with unique ids; ``fields`` override anything."""
    now = datetime.now(UTC)
    cid = fields.pop("command_id", uuid.uuid4().hex)
    data: dict[str, Any] = {
        "command_id": cid,
        "journey_id": f"j-{cid[:8]}",
        "abandonment_id": f"a-{cid[:8]}",
        "customer_id": customer_id or f"c-{cid[:8]}",
        "store_id": "store-1",
        "channel": channel,
        "to": to,
        "template": template or ("cart_sms_1" if channel == "sms" else "cart_email_1"),
        "locale": "en",
        "variables": {
            "first_name": "Ann",
            "store_name": "Cartpulse Shop",
            "store_postal_address": "Cartpulse Shop, 100 Example Street, Springfield, NY 10001",
            "cart_url": f"https://shop.example.com/cart/{cid[:8]}",
            "cart_items": [
                {"product_id": "p1", "name": "Blue Mug", "quantity": 1, "price": "12.00"}
            ],
        },
        "variant": "a",
        "expires_at": (now + timedelta(seconds=expires_in)).isoformat(),
        "created_at": now.isoformat(),
        "mode": "live",
    }
    data.update(fields)
    return SendCommand.model_validate(data)


async def opt_in(
    kafka: AIOKafkaProducer, settings: Settings, customer_id: str, channel: str
) -> None:
    await kafka.send_and_wait(
        f"{settings.topic_prefix}consents",
        key=f"{customer_id}:{channel}".encode(),
        value=orjson.dumps(
            {
                "status": "opted_in",
                "source": "checkout",
                "recorded_at": datetime.now(UTC).isoformat(),
            }
        ),
    )


async def until_mirrored(
    store: ConsentStore, statuses: dict[str, str], channel: Channel = "sms", within: float = 15.0
) -> None:
    """Wait until Redis holds each customer's consent with the status given: the mirror reads
    the consents topic's partitions independently, so one customer mirrored says nothing of
    another's."""
    deadline = time.monotonic() + within
    while True:
        held = {c: await store.get(c, channel) for c in statuses}
        missing = {c: s for c, s in statuses.items() if getattr(held[c], "status", None) != s}
        if not missing:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not mirrored within {within} s: {missing}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def kafka_producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    kafka = producer(settings)
    await kafka.start()
    try:
        yield kafka
    finally:
        await kafka.stop()


async def produce_commands(
    settings: Settings, commands: list[SendCommand], topic: str | None = None
) -> None:
    channel = commands[0].channel if commands else "sms"
    async with kafka_producer(settings) as kafka:
        for cmd in commands:
            await kafka.send(
                topic or f"{settings.topic_prefix}send.{channel}",
                value=cmd.to_json(),
                key=cmd.to.encode(),
            )
        await kafka.flush()


async def results(settings: Settings, expected: int, within: float = 60.0) -> list[SendResult]:
    """Every result so far, once there are at least ``expected`` records (duplicates count)."""
    records = await consume_all(settings, f"{settings.topic_prefix}send.results", expected, within)
    return [SendResult.from_json(r.value) for r in records]


async def final_results(
    settings: Settings, command_ids: set[str], within: float = 60.0
) -> list[SendResult]:
    """Every result, once each of ``command_ids`` has a final (non-duplicate) one."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        found = await results(settings, len(command_ids), within=max(1.0, within / 4))
        done = {r.command_id for r in found if r.status in FINAL_SEND_STATUSES}
        if command_ids <= done or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(1.0)  # reading the topic again is not free: keep the box quiet


@contextlib.asynccontextmanager
async def running(*services: Any) -> AsyncIterator[asyncio.Event]:
    """Run coroutine factories taking ``stop`` until the block ends; re-raise their errors."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(service(stop)) for service in services]
    try:
        yield stop
    finally:
        stop.set()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        for outcome in done:
            if isinstance(outcome, BaseException):
                raise outcome


@contextlib.asynccontextmanager
async def fresh_mirror(settings: Settings) -> AsyncIterator[None]:
    """A stand-in for a caught-up consent mirror: its heartbeat, kept fresh while the block
    runs, so a sender's readiness says only what the test is about."""
    redis = Redis(host="127.0.0.1", port=REDIS_PORT)
    heartbeat = MirrorHeartbeat(redis, Keys(settings.effective_redis_key_prefix))

    async def beat() -> None:
        while True:
            now = time.time()
            await heartbeat.beat(dict.fromkeys(range(settings.topic_partitions), now))
            await asyncio.sleep(BEAT_INTERVAL)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await redis.aclose()


async def ensure_topics(settings: Settings, channel: Channel = "sms") -> None:
    """Create the sender's topics first: producing to a missing topic auto-creates it wrong."""
    await create_topics(settings, sender_topics(settings, channel)[2])
