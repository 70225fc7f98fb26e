"""``cartpulse coupons``: the Kafka shell of the registrar (``registrar.py``).

Reads ``coupons`` (codes issued by the journeys, acks written by a store) and ``orders``
(completed orders, for redemptions) in one consumer group, ``<sender group>.coupons``; writes
each coupon's new state back to ``coupons`` (keyed by code) and keeps it in Redis for the
senders. Records are handled in order per partition, and an offset is committed only once its
record is handled (every step is idempotent: a redelivery is harmless).

* A registration to try again later pauses the record's partition and seeks back to it; the
  loop keeps polling (no long sleep blocks a rebalance) and resumes it when it is due.
* Nothing escapes the loop: an invalid ``coupons`` record goes to ``coupons.dlq`` with its
  reason; an unexpected error too, after it is logged. Redis or Kafka out of reach: the
  record is retried in place with back-off. ``orders`` records the journeys cannot read are
  theirs to dead-letter; here they are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Set
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from senders.core.keys import Keys
from senders.core.outcomes import backoff
from senders.coupons.ports import CouponProvider
from senders.coupons.registrar import OrderUse, Registrar
from senders.coupons.shopify import ShopifyProvider
from senders.coupons.store import RedisCouponStates
from senders.coupons.topic import TopicProvider
from senders.coupons.webhook import WebhookProvider
from senders.runtime.metrics import CouponMetrics
from streams.contract.coupons import CouponRecord, parse_coupon
from streams.contract.errors import InvalidRecord, UnknownEventType
from streams.contract.event_parse import parse_event
from streams.contract.privacy import Pseudonyms
from streams.contract.topics import Topic, TopicCatalogue
from streams.runtime.kafka import create_topics, dead_letter, producer
from streams.runtime.policy_file import load_policy
from streams.runtime.serving import stop_on_signals
from streams.runtime.settings import Settings

log = logging.getLogger(__name__)

INFRA_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    KafkaError,
)


def providers_for(settings: Settings, wanted: Set[str]) -> dict[str, CouponProvider]:
    """The providers the policy's stores name (a webhook or Shopify store needs its settings)."""
    made: dict[str, CouponProvider] = {"topic": TopicProvider(settings.coupon_topic_ack)}
    if "webhook" in wanted:
        made["webhook"] = WebhookProvider(settings)
    if "shopify" in wanted:
        made["shopify"] = ShopifyProvider(settings)
    return made


class CouponService(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(
        self,
        settings: Settings,
        registrar: Registrar,
        kafka: Any,
        metrics: CouponMetrics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        topics = TopicCatalogue.of(settings)
        self._s = settings
        self._registrar = registrar
        self._kafka = kafka
        self._metrics = metrics
        self._clock = clock
        self.coupons = topics.name(Topic.COUPONS)
        self.orders = topics.name(Topic.ORDERS)
        self._dlq = topics.dlq(Topic.COUPONS)
        # partition → (offset, attempts so far, when to try again: loop time)
        self._pending: dict[TopicPartition, tuple[int, int, float]] = {}
        self.ready = False

    async def emit(self, record: CouponRecord) -> None:
        await self._kafka.send_and_wait(
            self.coupons, value=record.to_json(), key=record.code.encode()
        )

    async def run(self, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            **self._s.kafka_client_options(),
            group_id=self._s.sender_group_id("coupons"),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        consumer.subscribe([self.coupons, self.orders], listener=self)
        await consumer.start()
        self.ready = True
        loop = asyncio.get_running_loop()
        try:
            while not stop.is_set():
                for tp, (_, _, due) in list(self._pending.items()):
                    if due <= loop.time() and tp in consumer.assignment():
                        consumer.resume(tp)
                batch = await consumer.getmany(timeout_ms=200, max_records=200)
                done: dict[TopicPartition, int] = {}
                for tp, records in batch.items():
                    for record in records:
                        attempts = self._attempts(tp, record.offset)
                        delay = await self._handle(record, attempts)
                        if delay is not None:
                            self._pending[tp] = (record.offset, attempts + 1, loop.time() + delay)
                            consumer.seek(tp, record.offset)
                            consumer.pause(tp)
                            break
                        self._pending.pop(tp, None)
                        done[tp] = record.offset + 1
                if done:
                    with contextlib.suppress(KafkaError):  # a rebalance: redone, idempotently
                        await consumer.commit(done)
        finally:
            self.ready = False
            with contextlib.suppress(KafkaError):
                await consumer.stop()

    def _attempts(self, tp: TopicPartition, offset: int) -> int:
        pending = self._pending.get(tp)
        return pending[1] if pending is not None and pending[0] == offset else 0

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        for tp in revoked:
            self._pending.pop(tp, None)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("coupons registrar assigned %d partitions", len(assigned))

    async def _handle(self, record: Any, attempts: int) -> float | None:
        """One record, to the end: None when done, else seconds until it is tried again."""
        failures = 0
        while True:
            try:
                if record.topic == self.coupons:
                    return await self._coupon(record, attempts)
                await self._order(record)
            except INFRA_ERRORS as exc:
                failures += 1
                log.warning("coupons: %s unavailable (%s); retrying", type(exc).__name__, exc)
                await asyncio.sleep(backoff(failures, 0.2, 5.0))
            except Exception as exc:  # nothing escapes the loop: dead-letter it, count it
                log.exception("coupons: %s@%d failed unexpectedly", record.topic, record.offset)
                await self._dead_letter(record, f"internal error: {type(exc).__name__}: {exc}")
                return None
            else:
                return None

    async def _coupon(self, record: Any, attempts: int) -> float | None:
        if record.value is None:
            return None  # a tombstone: the code is forgotten on the topic; Redis expires it
        try:
            coupon = parse_coupon(record.value)
        except InvalidRecord as exc:
            self._metrics.records.labels("invalid").inc()
            await self._dead_letter(record, exc.reason)
            return None
        return await self._registrar.on_coupon(coupon, attempts, self._clock())

    async def _order(self, record: Any) -> None:
        try:
            event = parse_event(record.value or b"", self._s.max_record_bytes)
        except (InvalidRecord, UnknownEventType):
            return  # the journeys read orders too, and dead-letter what they cannot
        order = event.order
        if event.type != "order_completed" or order is None or not order.discount_codes:
            return
        at = datetime.fromtimestamp(event.occurred_at / 1000, tz=UTC)
        use = OrderUse(order.id or event.event_id, event.customer_id, order.discount_codes, at)
        await self._registrar.on_order(use)

    async def _dead_letter(self, record: Any, reason: str) -> None:
        source = f"{record.topic}:{record.partition}:{record.offset}"
        letter = dead_letter(record.value, reason[:500], source, self.coupons)
        await self._kafka.send_and_wait(
            self._dlq, value=letter.value, key=record.key, headers=letter.headers
        )


async def run_coupons(
    settings: Settings,
    stop: asyncio.Event | None = None,
    registry: CollectorRegistry | None = None,
    handle_signals: bool = True,
) -> None:
    """Run the registrar until ``stop`` is set (or SIGTERM / SIGINT arrives)."""
    from senders.runtime.app import make_redis, serve_probes  # the senders' wiring, shared

    stop = stop or asyncio.Event()
    registry = registry or CollectorRegistry()
    metrics = CouponMetrics.create(registry)
    policy = load_policy(settings.policy_file)
    wanted = {store.coupon_provider for store in policy.stores.values()}
    providers: Mapping[str, CouponProvider] = providers_for(settings, wanted)
    topics = TopicCatalogue.of(settings)
    names = {topics.name(Topic.COUPONS), topics.dlq(Topic.COUPONS), topics.name(Topic.ORDERS)}
    names.add(topics.dlq(Topic.ORDERS))
    checks: list[Callable[[], bool]] = []
    runner = await serve_probes(settings, registry, checks)
    redis = make_redis(settings)
    kafka = producer(settings, linger_ms=2)
    try:
        await create_topics(settings, [s for s in topics.specs() if s.name in names])
        await kafka.start()
        for provider in providers.values():
            await provider.start()
        states = RedisCouponStates(
            redis,
            Keys(settings.effective_redis_key_prefix),
            settings.coupon_retention,
            Pseudonyms.of(settings),  # the erasures' index and checks (forgetting.py)
        )
        service: CouponService

        async def emit(record: CouponRecord) -> None:
            await service.emit(record)

        registrar = Registrar(
            policy, providers, states, emit, metrics,
            wait=settings.coupon_registration_wait,
            retry_base=settings.sender_backoff_base.total_seconds(),
            retry_max=settings.coupon_retry_max.total_seconds(),
        )  # fmt: skip
        service = CouponService(settings, registrar, kafka, metrics)
        checks.append(lambda: service.ready)
        log.info("coupons registrar: providers %s", sorted(providers))
        async with stop_on_signals(stop, handle_signals):
            await service.run(stop)
    finally:
        if runner is not None:
            await runner.cleanup()
        for provider in providers.values():
            await provider.close()
        await kafka.stop()
        await redis.aclose()
