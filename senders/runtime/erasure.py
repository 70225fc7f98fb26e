"""The senders' part of an erasure: the Redis entries that name the customer (docs/compliance.md,
Erasure). Runs in the consent mirror's process (``cartpulse consents mirror``), beside it.

Reads ``erasures`` in its own consumer group and, for each open request:

* the customer's index (``Keys.erasable``: every key the SMS sender wrote naming them) gives
  the phone-index sets they are in (the customer is removed from each) and their short SMS
  links (deleted: a click on one is then a 404);
* each number-level consent (``addr:<hash>:sms``) of a number the customer was texted at is
  written again with the same status, time and source and evidence that names nobody (a
  STOP's evidence holds the number and the customers it resolved to);
* the mirror's copies of the customer's own consents, and its notes of which of them it
  appended to ``consents.history``, are deleted (``erased:`` and the ``consents`` tombstones
  the journeys write keep them away);
* the customer's id is retired in Redis (``erased:<pseudonym>``, as the mirror copies it from
  ``consents``), then every coupon code noted under their pseudonym is written again without
  them, in Redis and on ``coupons`` (``senders/coupons/forgetting.py``);
* ``erasures.done`` gets the part ``senders``.

The exactly-once ledger keeps no customer id (``SendService`` stores results without it), so
it has nothing to drop and a redelivered command is still sent at most once. Redis or Kafka
trouble is retried until it answers (the request is not committed before); a closed request
has nothing left to do here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, cast

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from redis.asyncio import Redis

from senders.adapters.consents import Consent, ConsentStore, ConsentUpdate, erased_subject
from senders.adapters.errors import INFRA_ERRORS
from senders.core.keys import Keys
from senders.core.outcomes import retry_until_stopped
from senders.coupons.forgetting import CouponErasure
from senders.coupons.store import RedisCouponStates
from senders.messages.short_links import LinkRecord
from streams.contract.commands import CHANNELS
from streams.contract.consent_history import ConsentEntry, consents_record
from streams.contract.erasure import ERASURE_SOURCE, Done, Erasure, parse_erasure
from streams.contract.errors import InvalidRecord
from streams.contract.privacy import Pseudonyms
from streams.contract.topics import Topic, TopicCatalogue
from streams.runtime.metrics import ErasureMetrics
from streams.runtime.settings import Settings

log = logging.getLogger(__name__)

# (topic, key, value or None for a tombstone): produce one record, return once acknowledged
Produce = Callable[[str, bytes, bytes | None], Awaitable[object]]


class SenderErasure:
    """Applies erasures to the senders' Redis; ``run`` consumes ``erasures``."""

    def __init__(
        self,
        settings: Settings,
        redis: Redis,
        keys: Keys,
        produce: Produce,
        metrics: ErasureMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._s = settings
        self._redis = redis
        self._keys = keys
        self._store = ConsentStore(redis, keys)
        self._names = Pseudonyms.of(settings)
        self._produce = produce
        self._metrics = metrics
        self._clock = clock
        catalogue = TopicCatalogue.of(settings)
        self._topic = catalogue.name(Topic.ERASURES)
        self._consents = catalogue.name(Topic.CONSENTS)
        self._done = catalogue.name(Topic.ERASURES_DONE)
        coupons = catalogue.name(Topic.COUPONS)

        async def emit(code: str, value: bytes | None) -> object:
            return await produce(coupons, code.encode(), value)

        states = RedisCouponStates(redis, keys, settings.coupon_retention, self._names)
        self._coupons = CouponErasure(states, emit, settings.coupon_retention)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume ``erasures`` until ``stop``; commits after each applied batch."""
        consumer = AIOKafkaConsumer(
            self._topic,
            **self._s.kafka_client_options(),
            group_id=f"{self._s.sender_group_id('consent-mirror')}.erasures",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=300, max_records=100)
                for records in batch.values():
                    for record in records:
                        if not await self._retried(record.key, record.value, stop):
                            return  # stopped mid-batch: its offsets stay uncommitted
                if batch:
                    with contextlib.suppress(KafkaError):
                        await consumer.commit()
        finally:
            with contextlib.suppress(KafkaError):
                await consumer.stop()

    async def _retried(self, key: bytes | None, value: bytes | None, stop: asyncio.Event) -> bool:
        """Apply one record, retrying Redis and Kafka until they answer; False if stopped."""
        try:
            erasure = parse_erasure(key, value)
        except InvalidRecord as exc:  # the journeys dead-letter it; here it is only skipped
            self._metrics.invalid.labels("senders").inc()
            log.warning("erasures: a record that is not an erasure skipped: %s", exc.reason)
            return True

        def failed(exc: BaseException) -> None:
            log.warning("erasure %s: %s; retrying", erasure.request_id, exc)

        return await retry_until_stopped(partial(self.erase, erasure), INFRA_ERRORS, stop, failed)

    async def erase(self, erasure: Erasure) -> dict[str, int]:
        """Drop what Redis holds of an open erasure's customer and confirm; returns the
        counts confirmed (nothing for a closed erasure). Raises what Redis or Kafka raise."""
        customer = erasure.customer_id
        if customer is None:
            return {}
        index = self._keys.erasable(erasure.subject)
        members = sorted(_text(m) for m in await self._redis.smembers(index))  # type: ignore[misc]  # redis-py's async stubs type smembers as a set
        phones = [m for m in members if m.startswith(f"{self._keys.prefix}phone:")]
        links = [m for m in members if m.startswith(f"{self._keys.prefix}short:")]
        for key in phones:
            await self._redis.zrem(key, customer)
        dropped_links = 0
        for key in links:
            raw = await self._redis.get(key)
            if raw is not None and _names(raw, customer):
                dropped_links += await self._redis.delete(key)
        rewritten = 0
        for key in phones:
            rewritten += await self._pseudonymise_number(key, erasure)
        own = [self._keys.consent(customer, channel) for channel in CHANNELS]
        consents = await self._redis.delete(*own)
        # the mirror's note of which store-written records it appended to consents.history
        await self._redis.delete(*(self._keys.consent_history(customer, c) for c in CHANNELS))
        await self._redis.delete(index)
        # retired before the coupons' index is read: the registrar rewrites what it keeps later
        retired = Consent("opted_out", erasure.requested_at_ms, ERASURE_SOURCE)
        for channel in CHANNELS:
            subject = erased_subject(self._names, customer)
            await self._store.apply(ConsentUpdate(subject, channel, retired))
        now_ms = int(self._clock() * 1000)
        coupons = await self._coupons.forget(customer, erasure.subject, now_ms)
        counts = {
            "phone_index": len(phones),
            "short_links": dropped_links,
            "number_consents": rewritten,
            "consents": consents,
            **coupons,
        }
        done = Done(
            erasure.subject, erasure.request_id, "senders", int(self._clock() * 1000),
            counts=counts,
        )  # fmt: skip
        await self._produce(self._done, done.key, done.to_json())
        self._metrics.applied.labels("senders").inc()
        self._metrics.dropped.labels("senders").inc(len(phones) + dropped_links + consents)
        log.info("erasure %s: senders' Redis entries dropped: %s", erasure.request_id, counts)
        return counts

    async def _pseudonymise_number(self, phone_key: str, erasure: Erasure) -> int:
        """Write the number-level consent of ``phone_key``'s number again with evidence that
        names nobody (same status, time and source); 1 when there was one."""
        subject = f"addr:{phone_key.rsplit(':', 1)[-1]}"  # the number's hash, as in its key
        consent = await self._store.get(subject, "sms")
        if consent is None:
            return 0
        evidence = {"erasure_request": erasure.request_id, "pseudonymised": True}
        entry = ConsentEntry(
            subject, "sms", consent.status, consent.source, consent.recorded_at_ms, evidence
        )
        # not through ConsentLedger: no history-id header, so the mirror appends it to the history
        await self._produce(self._consents, *consents_record(entry))
        return 1


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _names(raw: bytes | str, customer: str) -> bool:
    """Whether a short link's record is the customer's (an unreadable one counts as theirs)."""
    try:
        return LinkRecord.from_json(raw).customer_id == customer
    except InvalidRecord:
        return True


def kafka_produce(producer: Any) -> Produce:
    """``Produce`` through a started ``AIOKafkaProducer``."""

    async def produce(topic: str, key: bytes, value: bytes | None) -> object:
        return await producer.send_and_wait(topic, value, key=key)

    return cast(Produce, produce)
