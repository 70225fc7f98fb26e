"""Wiring of ``cartpulse webhooks``: settings in, a running aiohttp service out.

Owns the Kafka producer and the Redis client (started before the site accepts requests,
closed after it stopped), creates the topics it writes, and serves until ``stop`` is set or
SIGTERM / SIGINT arrives; aiohttp's shutdown lets requests in flight finish first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

from aiohttp import web
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from senders.app import KafkaEmitter, make_redis, stop_on_signals
from senders.clock import Clock, SystemClock
from senders.consents import ConsentStore
from senders.keys import Keys
from senders.phonebook import PhoneBook
from senders.service import INFRA_ERRORS, UNAVAILABLE_ERRORS
from senders.webhooks.dedup import RedisDeduplicator
from senders.webhooks.keywords import Keywords
from senders.webhooks.links import LinkConfig, LinkHooks
from senders.webhooks.metrics import WebhookMetrics
from senders.webhooks.routes import make_app
from senders.webhooks.twilio import TwilioConfig, TwilioHooks
from streams.errors import ConfigurationError
from streams.kafka import create_topics, producer
from streams.settings import Settings
from streams.topics import Topic, TopicCatalogue

log = logging.getLogger(__name__)

SHUTDOWN_GRACE: Final = 10.0  # seconds requests in flight get to finish on SIGTERM


class KafkaOutbox(KafkaEmitter):
    """The senders' ``consents`` and ``send.results``, and ``engagement``, each acknowledged
    before returning."""

    def __init__(self, kafka: AIOKafkaProducer, topics: TopicCatalogue) -> None:
        super().__init__(kafka, topics)
        self._engagement = topics.name(Topic.ENGAGEMENT)

    async def engagement(self, key: bytes, value: bytes) -> None:
        await self._kafka.send_and_wait(self._engagement, value=value, key=key)


def check_settings(settings: Settings) -> None:
    """Refuse to start without the secrets that make the webhooks trustworthy."""
    missing = [
        name
        for name, value in (
            ("CARTPULSE_TWILIO_AUTH_TOKEN", settings.twilio_auth_token),
            ("CARTPULSE_UNSUBSCRIBE_SECRET", settings.unsubscribe_secret),
            ("CARTPULSE_CLICK_SECRET", settings.click_secret),
        )
        if not value.get_secret_value()
    ]
    if missing:
        raise ConfigurationError(f"the webhooks service needs {', '.join(missing)}")


async def run_webhooks(
    settings: Settings,
    stop: asyncio.Event | None = None,
    registry: CollectorRegistry | None = None,
    clock: Clock | None = None,
    handle_signals: bool = True,
    started: asyncio.Event | None = None,
) -> None:
    """Serve the webhooks until ``stop`` is set; ``started`` is set once the port accepts."""
    check_settings(settings)
    stop = stop or asyncio.Event()
    registry = registry or CollectorRegistry()
    metrics = WebhookMetrics.create(registry)
    clock = clock or SystemClock()
    keys = Keys(settings.redis_key_prefix)
    topics = TopicCatalogue.of(settings)
    wanted = {topics.name(t) for t in (Topic.CONSENTS, Topic.SEND_RESULTS, Topic.ENGAGEMENT)}
    await create_topics(settings, [s for s in topics.specs() if s.name in wanted])
    redis = make_redis(settings)
    kafka = producer(settings)
    runner: web.AppRunner | None = None
    try:
        await kafka.start()
        outbox = KafkaOutbox(kafka, topics)
        consents = ConsentStore(redis, keys)
        twilio = TwilioHooks(
            TwilioConfig(
                auth_token=settings.twilio_auth_token.get_secret_value(),
                keywords=Keywords.with_extra_opt_outs(settings.webhooks_opt_out_keywords),
                help_reply=settings.webhooks_help_reply,
                opt_out_reply=settings.webhooks_opt_out_reply,
                opt_in_reply=settings.webhooks_opt_in_reply,
            ),
            outbox,
            consents,
            PhoneBook(redis, keys, settings.phone_index_ttl),
            RedisDeduplicator(redis, keys, settings.webhooks_dedup_ttl),
            metrics,
            clock,
        )
        links = LinkHooks(
            LinkConfig(
                unsubscribe_secret=settings.unsubscribe_secret.get_secret_value().encode(),
                click_secret=settings.click_secret.get_secret_value().encode(),
                redirect_hosts=settings.webhooks_redirect_hosts,
            ),
            outbox,
            consents,
            metrics,
            clock,
        )

        async def ready() -> bool:
            try:
                async with asyncio.timeout(1.0):
                    return bool(await redis.ping())
            except UNAVAILABLE_ERRORS:
                return False

        app = make_app(
            twilio,
            links,
            metrics,
            registry,
            ready,
            settings.webhooks_max_body_bytes,
            settings.webhooks_public_url,
        )
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_GRACE)
        await runner.setup()
        await web.TCPSite(runner, settings.webhooks_host, settings.webhooks_port).start()
        log.info("webhooks listening on %s:%d", settings.webhooks_host, settings.webhooks_port)
        if started is not None:
            started.set()
        async with stop_on_signals(stop, handle_signals):
            await stop.wait()
    finally:
        if runner is not None:
            await runner.cleanup()
        with contextlib.suppress(*INFRA_ERRORS):
            await kafka.stop()
        await redis.aclose()
