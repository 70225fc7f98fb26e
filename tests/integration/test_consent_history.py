"""The consent history on the real stack: consent changes written by every path (an import, a
STOP through the webhooks service, a record the store writes to ``consents`` itself, a one-click
unsubscribe), then ``consents`` compacted by the broker; the current view holds only the latest
record per key while ``cartpulse consents history`` prints every change in order with its
evidence, asked for by the customer id although the history knows the customer only by their
pseudonym (no record holds the id, the number or the email in clear), and a second mirror
reading ``consents`` from its start appends nothing again."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from redis.asyncio import Redis

from senders.adapters.consents import address_subject
from senders.adapters.phonebook import PhoneBook
from senders.core.keys import Keys
from senders.messages.unsubscribe import UnsubscribeToken, make_token, token_id
from senders.runtime.app import run_mirror
from senders.webhooks.service import run_webhooks
from streams.contract.privacy import Pseudonyms
from streams.contract.topics import Topic, TopicCatalogue
from streams.runtime.kafka import create_topics, read_records
from streams.runtime.settings import Settings
from tests.senders.conftest import kafka_producer, running, sender_settings
from tests.support.net import free_port
from tests.support.webhooks import AUTH_TOKEN, PUBLIC_URL, inbound_form, sign

pytestmark = pytest.mark.integration

HASH_KEY = "consent-history-test-key"
NAMES = Pseudonyms(HASH_KEY.encode())
NUMBER = "+14155550777"
EMAIL = "Ada@Example.com"
# The test's own consents topic: a segment rolls after 100 ms and the cleaner takes any dirt,
# so the broker compacts it within its cleaner's back-off (15 s by default).
FAST_COMPACTION = {
    "cleanup.policy": "compact",
    "segment.ms": "100",
    "min.cleanable.dirty.ratio": "0.01",
    "min.compaction.lag.ms": "0",
}


def history_settings(settings: Settings, key_prefix: str) -> Settings:
    return sender_settings(
        settings,
        key_prefix,
        webhooks_host="127.0.0.1",
        webhooks_port=free_port(),
        webhooks_metrics_port=free_port(),
        webhooks_public_url=PUBLIC_URL,
        sender_http_port=0,
        address_hash_key=SecretStr(HASH_KEY),
    )


def hashed(address: str) -> str:
    digest = hmac.new(HASH_KEY.encode(), address.lower().encode(), hashlib.sha256).hexdigest()
    return f"hmac-sha256:{digest}"


async def cartpulse(s: Settings, *args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    """The ``cartpulse`` command in a process of its own, on the test's Kafka and prefix."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTPULSE_")}
    env |= {
        "CARTPULSE_KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers,
        "CARTPULSE_TOPIC_PREFIX": s.topic_prefix,
        "CARTPULSE_TOPIC_PARTITIONS": str(s.topic_partitions),
        "CARTPULSE_ADDRESS_HASH_KEY": HASH_KEY,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streams.cli", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(stdin), 60)
    return process.returncode or 0, out.decode(), err.decode()


async def wait_for(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"{what}: not within {within} s"
        await asyncio.sleep(0.5)


async def records_of(s: Settings, topic: Topic, keys: set[bytes]) -> list[Any]:
    name = TopicCatalogue.of(s).name(topic)
    return [r async for r in read_records(s, name) if r.key in keys]


async def compacting_consents(s: Settings) -> None:
    """Create the test's ``consents`` first, so the services find it and leave its configs."""
    admin = AIOKafkaAdminClient(**s.kafka_client_options())
    await admin.start()
    try:
        name = TopicCatalogue.of(s).name(Topic.CONSENTS)
        await admin.create_topics(
            [NewTopic(name, s.topic_partitions, 1, topic_configs=FAST_COMPACTION)]
        )
    finally:
        await admin.close()
    await create_topics(s, TopicCatalogue.of(s).specs())


async def topic_config(s: Settings, topic: Topic) -> dict[str, str]:
    admin = AIOKafkaAdminClient(**s.kafka_client_options())
    await admin.start()
    try:
        name = TopicCatalogue.of(s).name(topic)
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
    finally:
        await admin.close()
    [resource] = response.resources
    return {entry[0]: entry[1] for entry in resource[4]}


@contextlib.asynccontextmanager
async def services(s: Settings) -> AsyncIterator[None]:
    """The consent mirror and the webhooks service, until the block ends."""
    started = asyncio.Event()
    async with running(
        lambda stop: run_mirror(s, stop=stop, handle_signals=False),
        lambda stop: run_webhooks(s, stop=stop, handle_signals=False, started=started),
    ):
        await asyncio.wait_for(started.wait(), 30)
        yield


async def post(s: Settings, path: str, body: str, headers: dict[str, str]) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"http://127.0.0.1:{s.webhooks_port}{path}", data=body, headers=headers) as r,
    ):
        return r.status


async def roll_every_segment(kafka: AIOKafkaProducer, s: Settings) -> None:
    """A tombstone of a key nobody has on every partition: the segments holding the test's
    records stop being the active ones, which the cleaner never touches."""
    await asyncio.sleep(0.2)  # past segment.ms since the last record
    name = TopicCatalogue.of(s).name(Topic.CONSENTS)
    for partition in range(s.topic_partitions):
        key = f"roll-{partition}:sms".encode()
        await kafka.send_and_wait(name, key=key, value=None, partition=partition)


async def test_a_consent_history_survives_compaction_with_every_change_in_order(
    settings: Settings, key_prefix: str, redis: Redis, tmp_path: Path
) -> None:
    s = history_settings(settings, key_prefix)
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    named = NAMES.customer(customer)  # the history's key and subject for the customer
    keys = {f"{customer}:sms".encode(), f"{customer}:email".encode()}
    await compacting_consents(s)
    assert (await topic_config(s, Topic.CONSENT_HISTORY))["retention.ms"] == "-1"
    assert (await topic_config(s, Topic.CONSENT_HISTORY))["cleanup.policy"] == "delete"

    # 1. the store's backfill, imported: opted in to both channels at checkout
    checkout = datetime.now(UTC) - timedelta(days=30)
    evidence = {
        "ip": "203.0.113.7",
        "user_agent": "Mozilla/5.0 (checkout)",
        "consent_text": "Text me cart reminders. Msg & data rates may apply. Reply STOP to end.",
    }
    lines = [
        {"customer_id": customer, "channel": channel, "status": "opted_in",
         "source": "checkout_checkbox", "recorded_at": checkout.isoformat(),
         "evidence": evidence, "address": address}
        for channel, address in (("sms", NUMBER), ("email", EMAIL))
    ]  # fmt: skip
    backfill = tmp_path / "consents.jsonl"
    backfill.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    code, out, err = await cartpulse(s, "import", "--format", "consents", str(backfill))
    assert code == 0, err
    assert "imported 2 consents" in out

    await PhoneBook(redis, Keys(key_prefix), s.phone_index_ttl).remember(
        NUMBER, customer, int(time.time() * 1000)
    )
    async with services(s):
        # 2. STOP from the number, through the webhooks service as Twilio posts it
        form = inbound_form("STOP", sender=NUMBER, sid="SM" + uuid.uuid4().hex)
        signature = sign(f"{PUBLIC_URL}/twilio/sms", form, AUTH_TOKEN)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        }
        assert await post(s, "/twilio/sms", urlencode(form), headers) == 200

        # 3. the store writes an opt-in to consents itself (its preference centre)
        await asyncio.sleep(0.01)
        again = datetime.now(UTC)  # after the STOP: this opt-in is the number's latest word
        store_record = {
            "customer_id": customer, "channel": "sms", "status": "opted_in",
            "source": "preference_center", "recorded_at": again.isoformat(),
            "evidence": {"ip": "198.51.100.4", "consent_text": "Yes, text me"},
        }  # fmt: skip
        async with kafka_producer(s) as kafka:
            await kafka.send_and_wait(
                TopicCatalogue.of(s).name(Topic.CONSENTS),
                key=f"{customer}:sms".encode(),
                value=orjson.dumps(store_record),
            )

            async def four_in_history() -> bool:
                return len(await records_of(s, Topic.CONSENT_HISTORY, {named.encode()})) >= 4

            await wait_for(four_in_history, 30, "the mirror appends the store's record")

            # 4. one-click unsubscribe from the email
            expires = int(time.time() * 1000) + 86_400_000
            token = make_token(
                b"unsubscribe-test-secret", UnsubscribeToken(customer, "email", "store-1", expires)
            )
            one_click = {
                "Content-Type": "application/x-www-form-urlencoded",
                "User-Agent": "Gmail",
            }
            path = f"/unsubscribe?token={token}"
            assert await post(s, path, "List-Unsubscribe=One-Click", one_click) == 200

            # the broker compacts consents: only the latest record per key is left
            await roll_every_segment(kafka, s)

            async def compacted() -> bool:
                return len(await records_of(s, Topic.CONSENTS, keys)) == 2

            await wait_for(compacted, 120, "consents compacted")

    current = {r.key: orjson.loads(r.value) for r in await records_of(s, Topic.CONSENTS, keys)}
    assert current[f"{customer}:sms".encode()]["source"] == "preference_center"
    assert current[f"{customer}:email".encode()]["source"] == "email_one_click"

    # the history still holds every change, in the order they happened, with the evidence
    code, out, err = await cartpulse(s, "consents", "history", customer, "--json")
    assert code == 0, err
    trail = [orjson.loads(line) for line in out.splitlines()]
    assert [(t["channel"], t["status"], t["source"]) for t in trail] == [
        ("sms", "opted_in", "import"),
        ("email", "opted_in", "import"),
        ("sms", "opted_out", "sms_keyword"),
        ("sms", "opted_in", "store"),
        ("email", "opted_out", "email_one_click"),
    ]
    imported, _, stop, store, unsubscribed = trail
    assert imported["evidence"]["source"] == "checkout_checkbox"
    assert imported["evidence"]["evidence"] == evidence  # IP, user agent, the text shown
    assert imported["address_hash"] == hashed(NUMBER)
    assert trail[1]["address_hash"] == hashed("ada@example.com")
    assert stop["evidence"]["keyword"] == "STOP"
    assert stop["evidence"]["message_sid"] == form["MessageSid"]
    assert stop["evidence"]["resolved_customers"] == [named]
    assert stop["address_hash"] == hashed(NUMBER)
    # the history holds the customer only as their pseudonym, the number only as its hash
    assert {t["subject"] for t in trail} == {named}
    for clear in (customer, NUMBER, NUMBER.removeprefix("+"), EMAIL.lower(), EMAIL):
        assert clear not in out
    assert store["evidence"]["source"] == "preference_center"
    assert store["evidence"]["evidence"] == store_record["evidence"]
    assert store["evidence"]["record"].startswith(f"{s.topic_prefix}consents:")
    assert unsubscribed["evidence"]["token_id"] == token_id(token)
    assert unsubscribed["evidence"]["user_agent"] == "Gmail"
    assert "token" not in unsubscribed["evidence"]  # its payload is the customer id
    times = [t["recorded_at"] for t in trail]
    assert times == sorted(times)

    # the number's own trail, and the text a person reads
    code, out, _ = await cartpulse(s, "consents", "history", "--address", NUMBER, "--json")
    assert code == 0
    number = [orjson.loads(line) for line in out.splitlines()]
    assert [(n["subject"], n["kind"]) for n in number] == [
        (NAMES.customer(address_subject(NUMBER)), "number")
    ]
    code, out, err = await cartpulse(s, "consents", "history", customer, "--channel", "email")
    assert code == 0, err
    assert f"{customer} ({named}): 2 email consent change(s)" in out
    assert "email_one_click" in out and token_id(token) in out and "sms_keyword" not in out

    # an audit export of the range, sorted by recorded_at
    start = (checkout - timedelta(minutes=1)).isoformat()
    end = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    exported = tmp_path / "audit.jsonl"
    code, _, err = await cartpulse(
        s, "consents", "export", "--from", start, "--to", end, "--output", str(exported)
    )
    assert code == 0, err
    audit = [orjson.loads(line) for line in exported.read_bytes().splitlines()]
    mine = [a for a in audit if a["subject"] == named]
    assert sorted(a["history_id"] for a in mine) == sorted(t["history_id"] for t in trail)
    assert [a["recorded_at"] for a in audit] == sorted(a["recorded_at"] for a in audit)

    # a mirror of another group reads consents from its start: nothing is appended twice
    other = s.model_copy(update={"sender_group": f"g{uuid.uuid4().hex[:8]}"})
    registry = CollectorRegistry()
    seen = ("cartpulse_consent_mirror_history_total", {"outcome": "seen"})
    async with running(
        lambda stop: run_mirror(other, stop=stop, registry=registry, handle_signals=False)
    ):

        async def met_the_store_record() -> bool:
            return (registry.get_sample_value(*seen) or 0) >= 1

        await wait_for(met_the_store_record, 30, "the second mirror reads the store's record")
    history = await records_of(s, Topic.CONSENT_HISTORY, {named.encode()})
    assert len(history) == 5
    everything = [
        r async for r in read_records(s, TopicCatalogue.of(s).name(Topic.CONSENT_HISTORY))
    ]
    for clear in (customer, NUMBER.removeprefix("+"), EMAIL.lower(), EMAIL):
        assert not [r for r in everything if clear.encode() in (r.key or b"") + (r.value or b"")]
    assert registry.get_sample_value(
        "cartpulse_consent_mirror_history_total", {"outcome": "appended"}
    ) in (None, 0.0)
