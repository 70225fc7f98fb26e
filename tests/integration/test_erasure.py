"""``cartpulse forget`` on the real stack (docs/compliance.md, Erasure): a worker (detector and
journeys, event mode), the consent mirror and an SMS sender against the Twilio test server.

A customer is profiled, consents, abandons a cart (an SMS goes out: the sender indexes the
number), holds a coupon ``cartpulse coupons`` registered, has a session open in the detector
and then opts out of SMS. After ``cartpulse forget``, no compacted topic's current view
(customers, consents, coupons, erasures, erasures.done, every table's changelog), no record of
``consents.history`` (append-only: read in full), no Redis key and no Redis value holds the
customer's id, email or phone in clear; the opt-out survives as a hash, the coupon as its code,
offer and status under the customer's pseudonym. A re-import of the customer and a replay of
their events bring nothing back, and the same phone imported under a new id with its old
consent gets nothing: the sender suppresses the command as ``erased``.

The append-only event logs (clickstream, cart, abandonments, commands, decisions, ...) are not
rewritten by an erasure: they age out with their retention (compliance.md says so).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import SecretStr
from redis.asyncio import Redis

from senders.adapters.consents import ConsentStore
from senders.core.keys import Keys
from senders.coupons.service import run_coupons
from senders.coupons.store import RedisCouponStates
from senders.runtime.app import run_mirror, run_sender
from streams.contract.coupons import CouponRecord, parse_coupon
from streams.contract.events import format_ms
from streams.contract.privacy import Pseudonyms
from streams.contract.topics import TopicCatalogue
from streams.runtime.settings import Settings
from tests.conftest import consume_all
from tests.senders.conftest import running, sender_settings
from tests.support.cli import run_cli
from tests.support.journeys import POLICY
from tests.support.redis_view import redis_text
from tests.support.workers import JOURNEYS, wait_for_count, worker
from tests.twilio_server import TwilioTestServer

pytestmark = pytest.mark.integration

CUSTOMER = "cust-erase-5a1"
PHONE = "+14155550142"
EMAIL = "ann.erase.5a1@example.com"
AGAIN = "cust-again-9c2"  # the same person, imported again under a new id
CODE = "CP-ERASE5A1"  # the customer's coupon
KEY = "erasure-test-key"
H = 3_600_000
IN_CLEAR = (CUSTOMER, PHONE, PHONE.removeprefix("+"), EMAIL)


def _t0() -> int:
    """16:00Z (11:00 or 12:00 in New York) of the latest day it is at least 7 h past: SMS due
    at +1 h and +5 h are in daytime, in the past, and not yet expired (48 h) for the sender."""
    now = int(time.time() * 1000)
    t0 = now // (24 * H) * (24 * H) + 16 * H
    while t0 > now - 7 * H:
        t0 -= 24 * H
    return t0


def _profile(customer: str) -> bytes:
    return orjson.dumps(
        {"customer_id": customer, "phone": PHONE, "email": EMAIL, "first_name": "Ann",
         "timezone": "America/New_York"}
    )  # fmt: skip


def _consent(customer: str, channel: str, status: str, at: str, source: str) -> bytes:
    return orjson.dumps(
        {"customer_id": customer, "channel": channel, "status": status, "source": source,
         "recorded_at": at, "evidence": {"form": "preferences", "email": EMAIL}}
    )  # fmt: skip


def _abandonment(customer: str, n: int, last_ms: int) -> bytes:
    return orjson.dumps(
        {
            "abandonment_id": f"ab-{customer}-{n}",
            "kind": "cart",
            "session_id": f"s-{customer}-{n}",
            "customer_id": customer,
            "store_id": "default",
            "last_activity_at": format_ms(last_ms),
            "detected_at": format_ms(last_ms + 30 * 60_000),
            "checkout_started": False,
            "cart": {"items": [{"product_id": "p1", "quantity": 1, "price": "150.00",
                                "name": "Lamp"}],
                     "value": "150.00", "currency": "USD",
                     "url": "https://shop.example.com/cart/1"},
            "viewed_products": [],
        }
    )  # fmt: skip


def _cart_events(t0: int) -> list[tuple[bytes, bytes]]:
    """A session of the customer the detector keeps open (days after every watermark sent)."""
    at = t0 + 10 * 24 * H
    return [
        (
            b"s-live",
            orjson.dumps(
                {
                    "event_id": f"ev-live-{n}",
                    "type": "cart_item_added",
                    "occurred_at": format_ms(at + n * 60_000),
                    "session_id": "s-live",
                    "customer_id": CUSTOMER,
                    "product": {"id": f"p{n}", "price": "20.00"},
                }
            ),
        )
        for n in range(2)
    ]


async def _current_view(settings: Settings, topic: str) -> dict[bytes | None, bytes]:
    """The topic as a table reads it: the latest value per key, tombstoned keys gone."""
    view: dict[bytes | None, bytes | None] = {}
    for record in await consume_all(settings, topic, 0, within=30):
        view[record.key] = record.value
    return {key: value for key, value in view.items() if value is not None}


async def _compacted_topics(settings: Settings) -> list[str]:
    """Every compacted topic of the test: the catalogue's and every table's changelog."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        names = set(await admin.list_topics())
    finally:
        await admin.close()
    specs = [s.name for s in TopicCatalogue.of(settings).specs() if s.compacted]
    changelogs = sorted(
        n for n in names if n.startswith(settings.topic_prefix) and n.endswith("-changelog")
    )
    assert any(n.endswith("-journeys-changelog") for n in changelogs), changelogs
    assert any(n.endswith("-sessions-changelog") for n in changelogs), changelogs
    return [*(s for s in specs if s in names), *changelogs]


def _coupon(customer: str) -> CouponRecord:
    """A coupon as the journeys issue it beside a command (streams.contract.coupons)."""
    issued = datetime.now(UTC)
    return CouponRecord.model_validate(
        {"code": CODE, "customer_id": customer, "journey_id": "jr-erase-1",
         "command_id": "cmd-erase-1", "store_id": "default", "percent": 10, "currency": "USD",
         "issued_at": issued, "expires_at": issued + timedelta(days=3)}
    )  # fmt: skip


async def _in_clear(settings: Settings, redis: Redis, key_prefix: str) -> list[str]:
    """Where the customer's id, phone or email is still held in clear: a compacted topic's
    current view, any record of the consent history, Redis."""
    found: list[str] = []
    history = f"{settings.topic_prefix}consents.history"
    views = [(t, await _current_view(settings, t)) for t in await _compacted_topics(settings)]
    every = await consume_all(settings, history, 0, within=30)
    views.append((history, {r.key: r.value for r in every if r.value is not None}))
    for topic, view in views:
        for key, value in view.items():
            record = (key or b"") + b" " + value
            found += [f"{topic}: {key!r}" for clear in IN_CLEAR if clear.encode() in record]
    held = await redis_text(redis, key_prefix)
    found += [f"redis: {line}" for line in held.splitlines() if any(c in line for c in IN_CLEAR)]
    return found


async def _until(check: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"not within {within:.0f} s: {what}"
        await asyncio.sleep(0.5)


async def test_forget_leaves_nothing_in_clear_and_nothing_comes_back(
    settings: Settings, key_prefix: str, redis: Redis, twilio: TwilioTestServer, tmp_path: Path
) -> None:
    t0 = _t0()
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    env = {"CARTPULSE_ADDRESS_HASH_KEY": KEY, "CARTPULSE_POLICY_FILE": str(policy)}
    s = sender_settings(
        settings, key_prefix, twilio, address_hash_key=SecretStr(KEY), policy_file=policy
    )

    def topic(name: str) -> str:
        return f"{settings.topic_prefix}{name}"

    assert run_cli(settings, "topics", "create").returncode == 0
    kafka = AIOKafkaProducer(**settings.kafka_client_options())
    await kafka.start()

    async def produce(name: str, key: bytes, value: bytes | None) -> None:
        await kafka.send_and_wait(topic(name), value, key=key)

    async def watermark(at: int) -> None:
        marked = await asyncio.to_thread(run_cli, settings, "watermark", str(at), env=env)
        assert marked.returncode == 0, marked.stderr

    try:
        await produce("customers", CUSTOMER.encode(), _profile(CUSTOMER))
        for channel in ("sms", "email"):
            value = _consent(CUSTOMER, channel, "opted_in", "2026-01-01T00:00:00.000Z", "checkout")
            await produce("consents", f"{CUSTOMER}:{channel}".encode(), value)
        mirror = s.model_copy(update={"sender_http_port": 0})
        with worker(settings, tmp_path, "--clock", "event", env={**JOURNEYS, **env}):
            async with running(
                lambda stop: run_mirror(mirror, stop, handle_signals=False),
                lambda stop: run_sender(s, "sms", stop, handle_signals=False),
                lambda stop: run_coupons(mirror, stop, handle_signals=False),
            ):
                # -- the customer's history ------------------------------------------------
                assert await wait_for_count(settings, topic("journey.inputs"), 2, within=90) == 2
                await produce("abandonments", CUSTOMER.encode(), _abandonment(CUSTOMER, 1, t0))
                for key, value in _cart_events(t0):
                    await produce("cart", key, value)
                await watermark(t0 + 2 * H)  # the SMS at +1 h goes out
                await _until(lambda: _true(len(twilio.requests) == 1), 60, "the first SMS")
                # a coupon of the customer's, registered by cartpulse coupons (topic provider)
                await produce("coupons", CODE.encode(), _coupon(CUSTOMER).to_json())
                names = Pseudonyms(KEY.encode())
                coupons = RedisCouponStates(redis, Keys(key_prefix), s.coupon_retention, names)

                async def registered() -> bool:
                    state = await coupons.get(CODE)
                    return state is not None and state.status == "registered"

                await _until(registered, 60, "the coupon registered")
                stop_at = format_ms(t0 + 3 * H)
                out = _consent(CUSTOMER, "sms", "opted_out", stop_at, "preference_centre")
                await produce("consents", f"{CUSTOMER}:sms".encode(), out)
                await watermark(t0 + 4 * H)  # the journeys apply the opt-out
                store = ConsentStore(redis, Keys(key_prefix))

                async def mirrored() -> bool:
                    consent = await store.get(CUSTOMER, "sms")
                    return consent is not None and consent.status == "opted_out"

                await _until(mirrored, 30, "the mirror has the opt-out")
                held = await _in_clear(settings, redis, key_prefix)
                assert any("sessions-changelog" in h for h in held), held  # the open session
                assert any("journeys-changelog" in h for h in held), held
                assert any("redis:" in h and ":phone:" in h for h in held), held
                assert any(h.startswith(topic("coupons:")) for h in held), held
                assert any("redis:" in h and "{coupon:" in h for h in held), held

                # -- the erasure ---------------------------------------------------------------
                forgot = await asyncio.to_thread(
                    run_cli, settings, "forget", CUSTOMER, "--reason", "gdpr art. 17 request",
                    "--wait", "120s", "--json", env=env,
                )  # fmt: skip
                assert forgot.returncode == 0, forgot.stderr + forgot.stdout
                outcome = orjson.loads(forgot.stdout)
                assert outcome["closed"] is True and outcome["missing"] == []
                parts = {"customers", "journeys", "senders"} | {f"detector:{p}" for p in range(4)}
                assert set(outcome["confirmed"]) == parts
                assert outcome["subject"] == Pseudonyms(KEY.encode()).customer(CUSTOMER)

                async def nothing_in_clear() -> bool:  # the tombstones land within moments
                    return not await _in_clear(settings, redis, key_prefix)

                await _until(nothing_in_clear, 30, "nothing in clear")
                # the opt-out survives as a hash on the suppression list
                suppressed = f"suppressed:{Pseudonyms(KEY.encode()).address(PHONE)}:sms"
                consents = await _current_view(settings, topic("consents"))
                assert orjson.loads(consents[suppressed.encode()])["status"] == "opted_out"
                # the coupon stays honoured under the customer's pseudonym, on coupons and Redis
                current = parse_coupon(
                    (await _current_view(settings, topic("coupons")))[CODE.encode()]
                )
                assert current == await coupons.get(CODE)
                assert (current.status, current.subject, current.customer_id) == (
                    "registered", names.customer(CUSTOMER), None,
                )  # fmt: skip
                decided = await _decisions(settings, CUSTOMER)

                # -- later: a re-import, a replay, and the same phone under a new id ----------
                await produce("customers", CUSTOMER.encode(), _profile(CUSTOMER))
                old = _consent(CUSTOMER, "sms", "opted_in", "2026-01-01T00:00:00.000Z", "import")
                await produce("consents", f"{CUSTOMER}:sms".encode(), old)
                await produce("abandonments", CUSTOMER.encode(), _abandonment(CUSTOMER, 2, t0))
                for key, value in _cart_events(t0):  # the session's events, replayed
                    await produce("cart", key, value)
                await produce("customers", AGAIN.encode(), _profile(AGAIN))
                again = _consent(AGAIN, "sms", "opted_in", "2026-01-01T00:00:00.000Z", "import")
                await produce("consents", f"{AGAIN}:sms".encode(), again)
                # after the journeys' clock (t0 + 4 h): applied once it passes, consent known
                await produce("abandonments", AGAIN.encode(), _abandonment(AGAIN, 1, t0 + 4 * H))
                await watermark(t0 + 6 * H)
                result = await _result_of(settings, AGAIN)
                assert (result["status"], result["error_code"]) == ("suppressed", "erased")
                assert len(twilio.requests) == 1  # nothing sent to the number again
                assert await _decisions(settings, CUSTOMER) == decided  # nothing came back
                records = await consume_all(settings, topic("send.sms"), 2, within=30)
                assert [orjson.loads(r.value)["customer_id"] for r in records] == [
                    CUSTOMER, AGAIN,
                ]  # fmt: skip
                # only what the store itself wrote again names the customer: its re-import
                leaks = set()
                for name in await _compacted_topics(settings):
                    for view_key, view_value in (await _current_view(settings, name)).items():
                        if CUSTOMER.encode() in (view_key or b"") + view_value:
                            leaks.add(name)
                assert leaks == {topic("customers"), topic("consents")}
                # the history took the store's re-import as it takes every record: pseudonymised
                history = await consume_all(settings, topic("consents.history"), 0, within=30)
                assert not [
                    r for r in history for c in IN_CLEAR if c.encode() in (r.key or b"") + r.value
                ]
    finally:
        await kafka.stop()

    # -- a replay of the range of the customer's session: nobody comes back --------------------
    session_at = t0 + 10 * 24 * H
    replayed = await asyncio.to_thread(
        run_cli, settings, "replay", "--from", format_ms(session_at - H),
        "--to", format_ms(session_at + H), "--namespace", "after", "--json",
        env={**JOURNEYS, **env}, timeout=600,
    )  # fmt: skip
    assert replayed.returncode == 0, replayed.stderr
    summary = orjson.loads(replayed.stdout)
    assert summary["copied"]["cart"] == 4  # the session's events, sent twice
    assert summary["copied"]["erasures"] >= 1  # copied with the profiles, read first
    namespace = settings.model_copy(update={"topic_prefix": summary["namespace"]})
    assert await consume_all(namespace, f"{namespace.topic_prefix}abandonments", 0, 10) == []
    assert await _decisions(namespace, CUSTOMER) == 0
    for name in await _compacted_topics(namespace):
        if name.endswith("-changelog"):
            view = await _current_view(namespace, name)
            assert not [k for k, v in view.items() if CUSTOMER.encode() in (k or b"") + v], name


async def _true(value: bool) -> bool:
    return value


async def _decisions(settings: Settings, customer: str) -> int:
    records = await consume_all(settings, f"{settings.topic_prefix}journey.decisions", 0, 30)
    return sum(orjson.loads(r.value)["customer_id"] == customer for r in records)


async def _result_of(settings: Settings, customer: str) -> dict[str, Any]:
    """The final result of ``customer``'s SMS command (waits up to 90 s for it)."""
    deadline = time.monotonic() + 90
    while True:
        records = await consume_all(settings, f"{settings.topic_prefix}send.results", 1, 10)
        for record in records:
            result = orjson.loads(record.value)
            if result.get("customer_id") == customer and result["status"] != "duplicate":
                return dict(result)
        if time.monotonic() > deadline:
            decisions = await consume_all(settings, f"{settings.topic_prefix}journey.decisions", 0)
            said = [r.value for r in decisions if customer.encode() in r.value]
            raise AssertionError(f"no send result for {customer}; its decisions: {said}")
        await asyncio.sleep(1.0)
