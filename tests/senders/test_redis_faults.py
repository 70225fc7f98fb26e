"""Redis stopped and started again under the consent mirror and under an SMS sender, on a
Redis of the test's own. What must hold:

* nothing is lost: every consent produced while Redis was down reaches the mirror after it is
  back, and every command produced while it was down is sent after it is back;
* nothing is sent twice: each command is created once at the provider and has one final
  result;
* SIGTERM while Redis is down ends the process promptly (well inside the shutdown grace) with
  exit code 0, and what it could not finish is left for the next run, not committed.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from senders.adapters.consents import ConsentStore
from senders.core.keys import Keys
from streams.contract.commands import FINAL_SEND_STATUSES
from streams.runtime.settings import Settings
from tests.senders.conftest import (
    command,
    ensure_topics,
    final_results,
    kafka_producer,
    produce_commands,
    sender_settings,
)
from tests.senders.redis_server import RedisServer, serve_redis
from tests.support.cli import start_cli, tail, terminate
from tests.support.webhooks import ACCOUNT_SID, AUTH_TOKEN
from tests.twilio_server import TwilioTestServer

pytestmark = pytest.mark.integration
PROMPT = 10.0  # seconds from SIGTERM to exit; the manifests grant 60


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    yield from serve_redis(tmp_path)


async def produce_consents(settings: Settings, customers: list[str]) -> None:
    async with kafka_producer(settings) as kafka:
        for customer in customers:
            await kafka.send_and_wait(
                f"{settings.topic_prefix}consents",
                key=f"{customer}:sms".encode(),
                value=orjson.dumps(
                    {
                        "status": "opted_out",
                        "source": "test",
                        "recorded_at": datetime.now(UTC).isoformat(),
                    }
                ),
            )


async def mirrored(store: ConsentStore, customers: list[str], within: float) -> set[str]:
    """The customers whose consent is in Redis, once all are (or ``within`` passed)."""
    deadline = time.monotonic() + within
    while True:
        found = {c for c in customers if await store.get(c, "sms") is not None}
        if found == set(customers) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)


async def test_the_mirror_stops_promptly_while_redis_is_down_and_loses_nothing(
    settings: Settings, key_prefix: str, own_redis: RedisServer, tmp_path: Path
) -> None:
    s = sender_settings(settings, key_prefix, redis_url=SecretStr(own_redis.url))
    redis = Redis.from_url(own_redis.url)
    store = ConsentStore(redis, Keys(key_prefix))
    await ensure_topics(s, "sms")  # the consents topics among them
    log = tmp_path / "mirror.log"
    before = [f"before-{n}" for n in range(3)]
    during = [f"during-{n}" for n in range(3)]
    try:
        mirror = start_cli(s, log, "consents", "mirror")
        await produce_consents(s, before)
        assert await mirrored(store, before, within=20) == set(before)
        own_redis.stop()
        await produce_consents(s, during)
        await asyncio.sleep(1.5)  # the mirror has them and cannot write them
        assert await terminate(mirror, PROMPT, log) < PROMPT
        own_redis.start()
        assert await mirrored(store, during, within=1) == set()  # not applied, not committed
        mirror = start_cli(s, log, "consents", "mirror")
        assert await mirrored(store, during, within=20) == set(during)  # read again: no loss
        await terminate(mirror, PROMPT, log)
    finally:
        await redis.aclose()


async def test_a_sender_rides_out_a_redis_restart_without_loss_or_duplicates(
    settings: Settings, key_prefix: str, own_redis: RedisServer, tmp_path: Path
) -> None:
    twilio = TwilioTestServer(ACCOUNT_SID, AUTH_TOKEN)
    await twilio.start()
    s = sender_settings(
        settings, key_prefix, twilio, redis_url=SecretStr(own_redis.url), sms_require_opt_in=False
    )
    await ensure_topics(s, "sms")
    log = tmp_path / "sender.log"
    first = [command(to=f"+1415555{n:04d}") for n in range(3)]
    across = [command(to=f"+1415556{n:04d}") for n in range(3)]  # produced with Redis down
    last = [command(to=f"+1415557{n:04d}") for n in range(3)]  # …and down at SIGTERM
    everything = first + across + last
    try:
        sender = start_cli(s, log, "send", "sms")
        await produce_commands(s, first)
        await twilio.wait_created(3, within=30)
        assert len(twilio.created) == 3, tail(log)
        await final_results(s, {c.command_id for c in first}, within=20)
        own_redis.stop()  # under the running sender
        await produce_commands(s, across)
        await asyncio.sleep(1.5)
        assert len(twilio.created) == 3  # no ledger, no send
        own_redis.start()
        await twilio.wait_created(6, within=20)
        # Their results recorded before Redis goes again: a send Twilio took but the ledger
        # had not closed yet would be found open at the restart (unknown, and rightly so).
        await final_results(s, {c.command_id for c in across}, within=20)
        own_redis.stop()
        await produce_commands(s, last)
        await asyncio.sleep(1.5)
        assert await terminate(sender, PROMPT, log) < PROMPT
        own_redis.start()
        sender = start_cli(s, log, "send", "sms")
        found = await final_results(s, {c.command_id for c in everything}, within=30)
        await terminate(sender, PROMPT, log)
    finally:
        await twilio.stop()
    final = [r for r in found if r.status in FINAL_SEND_STATUSES]
    assert Counter(r.command_id for r in final) == Counter(c.command_id for c in everything)
    assert {r.status for r in final} == {"sent"}, tail(log)
    created = Counter(r.form["To"] for r in twilio.created)
    assert created == Counter(c.to for c in everything)  # each exactly once
