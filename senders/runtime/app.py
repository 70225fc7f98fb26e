"""Wiring of the sender processes and the consent mirror: settings in, running services out.

Nothing here decides anything; it builds clients from the settings, owns their lifecycle
(start, stop on SIGTERM / SIGINT or ``stop``), and serves ``/metrics``, ``/healthz`` and
``/readyz`` on ``sender_http_host:sender_http_port`` when the port is set (bound first, so a
port in use ends the process before it touches Kafka).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, cast

from aiohttp import web
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from senders.adapters.consents import ConsentStore
from senders.adapters.heartbeat import MirrorHeartbeat, MirrorWatch
from senders.adapters.ledger import RedisLedger
from senders.adapters.phonebook import PhoneBook
from senders.adapters.providers import provider_for
from senders.adapters.ratelimit import RedisLimiter
from senders.adapters.short_link_store import RedisShortLinks
from senders.core.clock import Clock, SystemClock
from senders.core.keys import Keys
from senders.core.mirror_health import MirrorHealth
from senders.coupons.store import RedisCouponStates
from senders.messages.packs import checked_policy
from senders.runtime.consumer import CommandConsumer, SenderTopics
from senders.runtime.erasure import SenderErasure, kafka_produce
from senders.runtime.http import start_http
from senders.runtime.metrics import Metrics
from senders.runtime.mirror import ConsentMirror
from senders.runtime.mirror_history import StoreHistory
from senders.runtime.service import SendService
from streams.contract.commands import Channel, SendResult
from streams.contract.consent_history import ConsentEntry
from streams.contract.privacy import Pseudonyms
from streams.contract.topics import RETRY_TOPICS, Topic, TopicCatalogue
from streams.runtime.consent_ledger import ConsentLedger
from streams.runtime.kafka import create_topics, producer
from streams.runtime.metrics import ErasureMetrics
from streams.runtime.serving import stop_on_signals
from streams.runtime.settings import Settings

log = logging.getLogger(__name__)


def make_redis(settings: Settings) -> Redis:
    """A client for the settings' Redis; a Cluster client when ``redis_cluster`` is set.

    ``RedisCluster`` has the same command and script API (every script keeps its keys in one
    hash slot), so the rest of the senders are typed against ``Redis``.
    """
    url = settings.redis_url.get_secret_value()
    if settings.redis_cluster:
        return cast(Redis, RedisCluster.from_url(url))
    return cast(Redis, Redis.from_url(url))


class KafkaEmitter:
    """Results to ``send.results`` (keyed by command_id) and consent changes to the consent
    ledger (``consents.history``, then ``consents``)."""

    def __init__(
        self, kafka: AIOKafkaProducer, topics: TopicCatalogue, ledger: ConsentLedger
    ) -> None:
        self._kafka = kafka
        self._results = topics.name(Topic.SEND_RESULTS)
        self._ledger = ledger

    async def result(self, result: SendResult) -> None:
        await self._kafka.send_and_wait(
            self._results, value=result.to_json(), key=result.command_id.encode()
        )

    async def consent(self, entry: ConsentEntry) -> None:
        await self._ledger.record(entry)


def sender_topics(settings: Settings, channel: Channel) -> SenderTopics:
    """The command topic, its DLQ, every topic a sender needs to exist, and its retry topic."""
    topics = TopicCatalogue.of(settings)
    command = Topic.SEND_SMS if channel == "sms" else Topic.SEND_EMAIL
    retry = RETRY_TOPICS[command]
    wanted = {topics.name(command), topics.dlq(command), topics.name(retry)}
    wanted |= {topics.name(Topic.SEND_RESULTS), topics.name(Topic.CONSENTS)}
    wanted |= {topics.dlq(Topic.CONSENTS), topics.name(Topic.CONSENT_HISTORY)}
    specs = [spec for spec in topics.specs() if spec.name in wanted]
    return SenderTopics(topics.name(command), topics.dlq(command), specs, topics.name(retry))


async def run_sender(
    settings: Settings,
    channel: Channel,
    stop: asyncio.Event | None = None,
    registry: CollectorRegistry | None = None,
    clock: Clock | None = None,
    handle_signals: bool = True,
) -> None:
    """Run one sender replica until ``stop`` is set (or SIGTERM / SIGINT arrives)."""
    stop = stop or asyncio.Event()
    registry = registry or CollectorRegistry()
    metrics = Metrics.create(registry)
    clock = clock or SystemClock()
    keys = Keys(settings.effective_redis_key_prefix)
    policy, warnings = checked_policy(settings)  # the stores' templates, as at load
    for warning in warnings:
        log.warning("policy: %s", warning)
    redis = make_redis(settings)  # a client only: it connects on first use
    names = Pseudonyms.of(settings)  # the erasures' index and checks (docs/compliance.md)
    links, phones = (
        (
            RedisShortLinks(redis, keys, pseudonyms=names),
            PhoneBook(redis, keys, settings.phone_index_ttl, pseudonyms=names),
        )
        if channel == "sms"
        else (None, None)
    )
    provider: Any = provider_for(settings, channel, policy, links, phones)
    topics = sender_topics(settings, channel)
    checks: list[Callable[[], bool]] = []  # ready when every one holds (and there are some)
    runner = await serve_probes(settings, registry, checks)  # first: a bad port ends it at once
    kafka = producer(settings, linger_ms=2)
    try:
        await create_topics(settings, topics.specs)
        await kafka.start()
        await provider.start()
        service: SendService[Any] = SendService(
            settings,
            provider,
            RedisLedger(
                redis,
                keys,
                settings.sender_claim_ttl.total_seconds(),
                settings.sender_ledger_ttl.total_seconds(),
            ),
            RedisLimiter(redis),
            ConsentStore(redis, keys, names),
            KafkaEmitter(kafka, TopicCatalogue.of(settings), ConsentLedger.of(settings, kafka)),
            metrics,
            clock,
            # a message with a coupon goes out only once the store has its code (coupons/)
            RedisCouponStates(redis, keys, settings.coupon_retention, names),
        )
        consumer = CommandConsumer(settings, service, kafka, metrics, clock, topics)
        watch = await mirror_watch(settings, channel, redis, keys, kafka, metrics, clock)
        # Not ready while the provider refuses our credentials or is down (``health.py``), or
        # while the consent mirror is absent or behind (``mirror_health.py``); sends go on.
        checks += [lambda: consumer.ready, lambda: not service.health.down, lambda: watch.ready]
        log.info("%s sender consuming %s", channel, topics.command)
        watching = asyncio.create_task(watch.run(stop))
        try:
            async with stop_on_signals(stop, handle_signals):
                await consumer.run(stop)
        finally:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching
    finally:
        if runner is not None:
            await runner.cleanup()
        await provider.close()
        await kafka.stop()
        await redis.aclose()


async def mirror_watch(
    settings: Settings,
    channel: Channel,
    redis: Redis,
    keys: Keys,
    kafka: AIOKafkaProducer,
    metrics: Metrics,
    clock: Clock,
) -> MirrorWatch:
    """The sender's watch on the consent mirror of its key prefix, for every partition of the
    (started producer's) ``consents`` topic."""
    consents = TopicCatalogue.of(settings).name(Topic.CONSENTS)
    partitions = len(await kafka.partitions_for(consents))
    health = MirrorHealth(settings.sender_mirror_stale_after.total_seconds())
    gauge = metrics.mirror_age.labels(channel)
    return MirrorWatch(MirrorHeartbeat(redis, keys), health, partitions, gauge, clock)


async def serve_probes(
    settings: Settings, registry: CollectorRegistry, checks: list[Callable[[], bool]]
) -> web.AppRunner | None:
    """``/metrics``, ``/healthz``, ``/readyz`` on the sender HTTP port (None when it is 0)."""
    if not settings.sender_http_port:
        return None
    return await start_http(
        settings.sender_http_host,
        settings.sender_http_port,
        registry,
        lambda: bool(checks) and all(check() for check in checks),
    )


async def run_mirror(
    settings: Settings,
    stop: asyncio.Event | None = None,
    registry: CollectorRegistry | None = None,
    handle_signals: bool = True,
) -> None:
    """Run the consent mirror until ``stop`` is set (or SIGTERM / SIGINT arrives)."""
    stop = stop or asyncio.Event()
    registry = registry or CollectorRegistry()
    metrics = Metrics.create(registry)
    topics = TopicCatalogue.of(settings)
    wanted = {topics.name(t) for t in (Topic.CONSENTS, Topic.CONSENT_HISTORY)}
    wanted.add(topics.dlq(Topic.CONSENTS))
    checks: list[Callable[[], bool]] = []
    runner = await serve_probes(settings, registry, checks)
    redis = make_redis(settings)
    kafka = producer(settings)
    try:
        wanted |= {topics.name(Topic.ERASURES), topics.name(Topic.ERASURES_DONE)}
        wanted.add(topics.name(Topic.COUPONS))  # the erasures rewrite the customer's codes
        await create_topics(settings, [s for s in topics.specs() if s.name in wanted])
        await kafka.start()
        keys = Keys(settings.effective_redis_key_prefix)
        mirror = ConsentMirror(
            settings,
            ConsentStore(redis, keys),
            kafka,
            metrics,
            topics.name(Topic.CONSENTS),
            topics.dlq(Topic.CONSENTS),
            MirrorHeartbeat(redis, keys),
            history=StoreHistory(redis, keys, ConsentLedger.of(settings, kafka)),
        )
        checks.append(lambda: mirror.caught_up)
        async with stop_on_signals(stop, handle_signals):
            # the senders' part of erasures (senders/runtime/erasure.py), beside the mirror
            erasure = SenderErasure(
                settings, redis, keys, kafka_produce(kafka), ErasureMetrics.create(registry)
            )
            await asyncio.gather(mirror.run(stop), erasure.run(stop))
    finally:
        if runner is not None:
            await runner.cleanup()
        await kafka.stop()
        await redis.aclose()
