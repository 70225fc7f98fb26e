"""The senders' part of an erasure on the real Kafka and Redis: the consumer of ``erasures`` in
the consent mirror's process drops every Redis entry that names the customer, rewrites the
number-level consent of their number and the coupon records naming them without names (in
Redis and on ``coupons``), and confirms on ``erasures.done``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from redis.asyncio import Redis

from senders.adapters.consents import Consent, ConsentStore, ConsentUpdate, address_subject
from senders.adapters.phonebook import PhoneBook
from senders.adapters.short_link_store import RedisShortLinks
from senders.core.keys import Keys
from senders.coupons.store import RedisCouponStates
from senders.messages.short_links import LinkRecord
from senders.runtime.erasure import SenderErasure, kafka_produce
from streams.contract.coupons import CouponRecord, parse_coupon
from streams.contract.erasure import Erasure, parse_done
from streams.contract.privacy import Pseudonyms
from streams.contract.topics import Topic, TopicCatalogue
from streams.runtime.kafka import create_topics, partition_of
from streams.runtime.metrics import ErasureMetrics
from streams.runtime.settings import Settings
from tests.conftest import consume_all
from tests.senders.conftest import kafka_producer, sender_settings
from tests.support.redis_view import redis_text

pytestmark = pytest.mark.integration

CUSTOMER = "cust-erase-5a1"
OTHER = "cust-keep-77b"
PHONE = "+14155550142"
KEY = "sender-erasure-key"


async def test_the_senders_drop_what_names_the_customer_and_confirm(
    settings: Settings, key_prefix: str, redis: Redis
) -> None:
    s = sender_settings(settings, key_prefix, address_hash_key=SecretStr(KEY))
    names, keys = Pseudonyms.of(s), Keys(key_prefix)
    await create_topics(s, TopicCatalogue.of(s).specs())
    # What the SMS sender and the mirror wrote: a family phone texted for both customers, a
    # short link each, both customers' consents, the number's own STOP (its evidence names
    # the number and the customers), and the mirror's history notes.
    phones = PhoneBook(redis, keys, timedelta(days=400), pseudonyms=names)
    await phones.remember(PHONE, CUSTOMER, 1_000)
    await phones.remember(PHONE, OTHER, 2_000)
    links = RedisShortLinks(redis, keys, pseudonyms=names)
    far = 4_102_444_800_000  # 2100: not expired
    mine = LinkRecord("https://shop.example.com/cart/1", CUSTOMER, "default", "cmd-1", "sms", far)
    theirs = LinkRecord("https://shop.example.com/cart/2", OTHER, "default", "cmd-2", "sms", far)
    await links.register([("AbCdEfGh12", mine), ("ZyXwVuTs98", theirs)])
    store = ConsentStore(redis, keys, names)
    for channel in ("sms", "email"):
        await store.apply(ConsentUpdate(CUSTOMER, channel, Consent("opted_in", 1_000, "form")))
        history = keys.consent_history(CUSTOMER, channel)
        await redis.hset(history, "1000:opted_in", "h-1")  # type: ignore[misc]  # redis-py stubs
    number = address_subject(PHONE)
    await store.apply(ConsentUpdate(number, "sms", Consent("opted_out", 3_000, "sms_keyword")))
    # what the registrar kept: the customer's registered code, and the other customer's code
    # the customer's order redeemed
    coupons = RedisCouponStates(redis, keys, s.coupon_retention, names)
    issued = datetime.now(UTC)
    offer = {"percent": 10, "currency": "USD", "store_id": "default", "issued_at": issued,
             "expires_at": issued + timedelta(days=3), "status": "registered"}  # fmt: skip
    own = CouponRecord.model_validate(
        {**offer, "code": "CP-MINE", "customer_id": CUSTOMER, "journey_id": "jr-1"}
    )
    redeemed = CouponRecord.model_validate(
        {**offer, "code": "CP-THEIRS", "customer_id": OTHER, "journey_id": "jr-2",
         "status": "redeemed", "redeemed_order_id": "o-1", "redeemed_by": CUSTOMER}
    )  # fmt: skip
    await coupons.put(own)
    await coupons.put(redeemed)
    before = await redis_text(redis, key_prefix)
    assert CUSTOMER in before and keys.erasable(names.customer(CUSTOMER)) in before
    assert keys.coupons_of(names.customer(CUSTOMER)) in before

    erasure = Erasure(names.customer(CUSTOMER), "er-test", 1_781_100_000_000, "gdpr", CUSTOMER)
    catalogue = TopicCatalogue.of(s)
    async with kafka_producer(s) as kafka:
        partitions = await kafka.partitions_for(catalogue.name(Topic.ERASURES))
        await kafka.send_and_wait(
            catalogue.name(Topic.ERASURES), erasure.to_json(), key=erasure.subject.encode(),
            partition=partition_of(CUSTOMER.encode(), partitions),
        )  # fmt: skip
        part = SenderErasure(
            s, redis, keys, kafka_produce(kafka), ErasureMetrics.create(CollectorRegistry())
        )
        stop = asyncio.Event()
        task = asyncio.create_task(part.run(stop))
        done = await consume_all(s, catalogue.name(Topic.ERASURES_DONE), 1, within=60)
        stop.set()
        await asyncio.wait_for(task, 30)

    (confirmed,) = [parse_done(r.value) for r in done]
    assert (confirmed.part, confirmed.request_id) == ("senders", "er-test")
    assert confirmed.counts == {
        "phone_index": 1, "short_links": 1, "number_consents": 1, "consents": 2,
        "coupons": 2, "coupons_deleted": 0,
    }  # fmt: skip
    after = await redis_text(redis, key_prefix)
    assert CUSTOMER not in after  # no key or value names the customer any more
    assert PHONE not in after
    # the other customer keeps their entries: the number still finds them, their link resolves
    assert await phones.customers(PHONE) == [OTHER]
    assert await links.resolve("ZyXwVuTs98") == theirs
    assert await links.resolve("AbCdEfGh12") is None
    # the number's STOP is written again without names, same status and time
    records = await consume_all(s, catalogue.name(Topic.CONSENTS), 1, within=30)
    (rewritten,) = [r for r in records if r.key == f"{number}:sms".encode()]
    value = orjson.loads(rewritten.value)
    assert (value["status"], value["recorded_at"], value["source"]) == (
        "opted_out", "1970-01-01T00:00:03.000Z", "sms_keyword",
    )  # fmt: skip
    assert value["evidence"] == {"erasure_request": "er-test", "pseudonymised": True}
    # the coupons: written again without the customer, in Redis and on coupons (same keys)
    written = await consume_all(s, catalogue.name(Topic.COUPONS), 2, within=30)
    assert sorted(r.key for r in written) == [b"CP-MINE", b"CP-THEIRS"]
    assert not [r for r in written if CUSTOMER.encode() in r.value]
    rewritten_own = parse_coupon(next(r.value for r in written if r.key == b"CP-MINE"))
    assert rewritten_own == await coupons.get("CP-MINE")
    assert (rewritten_own.status, rewritten_own.subject, rewritten_own.customer_id, rewritten_own.percent) == (
        "registered", names.customer(CUSTOMER), None, 10,
    )  # fmt: skip
    kept_theirs = await coupons.get("CP-THEIRS")
    assert kept_theirs is not None
    assert (kept_theirs.customer_id, kept_theirs.redeemed_order_id, kept_theirs.redeemed_by) == (
        OTHER,
        "o-1",
        None,
    )
    assert await coupons.codes_of(names.customer(CUSTOMER)) == {}
    assert list(await coupons.codes_of(names.customer(OTHER))) == ["CP-THEIRS"]
    # the id is retired in Redis: what the registrar keeps later is rewritten by it
    assert await coupons.erased([CUSTOMER, OTHER]) == {CUSTOMER: names.customer(CUSTOMER)}


async def test_a_closed_erasure_has_nothing_left_to_drop(
    settings: Settings, key_prefix: str, redis: Redis
) -> None:
    s = sender_settings(settings, key_prefix)
    sent: list[tuple[str, bytes, bytes | None]] = []

    async def produce(topic: str, key: bytes, value: bytes | None) -> object:
        sent.append((topic, key, value))
        return None

    part = SenderErasure(
        s, redis, Keys(key_prefix), produce, ErasureMetrics.create(CollectorRegistry())
    )
    closed = Erasure("sub-1", "er-1", 1_781_100_000_000, "gdpr", None, 1_781_100_060_000)
    assert await part.erase(closed) == {}
    assert sent == []
