"""Wiring of ``cartpulse webhooks``: settings in, a running aiohttp service out.

Binds its two ports first (the public one: webhooks and probes; the metrics one, private by
default), then owns the Kafka producer and the Redis client (started before the sites accept
requests, closed after they stopped), creates the topics it writes, and serves until ``stop``
is set or SIGTERM / SIGINT arrives; aiohttp's shutdown lets requests in flight finish first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Final

from aiohttp import web
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from senders.adapters.consents import ConsentStore
from senders.adapters.errors import INFRA_ERRORS, UNAVAILABLE_ERRORS
from senders.adapters.phonebook import PhoneBook
from senders.adapters.short_link_store import RedisShortLinks
from senders.core.clock import Clock, SystemClock
from senders.core.keys import Keys
from senders.messages.packs import Packs
from senders.messages.templates import Renderer
from senders.runtime.app import KafkaEmitter, make_redis
from senders.webhooks.connections import ConnectionGuard, ConnectionLimits
from senders.webhooks.dedup import RedisDeduplicator
from senders.webhooks.help import help_replies
from senders.webhooks.keywords import Keywords
from senders.webhooks.links import LinkConfig, LinkHooks
from senders.webhooks.lograte import ThrottledLog
from senders.webhooks.metrics import WebhookMetrics
from senders.webhooks.routes import HttpLimits, make_app, make_metrics_app
from senders.webhooks.server import GuardedSite, ensure_descriptors
from senders.webhooks.twilio import TwilioConfig, TwilioHooks
from streams.contract.errors import ConfigurationError
from streams.contract.topics import Topic, TopicCatalogue
from streams.runtime.binding import listening
from streams.runtime.consent_ledger import ConsentLedger
from streams.runtime.kafka import create_topics, producer
from streams.runtime.policy_file import load_policy
from streams.runtime.serving import serve_until_stopped, sites_started
from streams.runtime.settings import Settings

log = logging.getLogger(__name__)

SHUTDOWN_GRACE: Final = 10.0  # seconds requests in flight get to finish on SIGTERM


class KafkaOutbox(KafkaEmitter):
    """The senders' consent ledger and ``send.results``, and ``engagement``, each acknowledged
    before returning."""

    def __init__(
        self, kafka: AIOKafkaProducer, topics: TopicCatalogue, ledger: ConsentLedger
    ) -> None:
        super().__init__(kafka, topics, ledger)
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


def connection_limits(settings: Settings) -> ConnectionLimits:
    return ConnectionLimits(
        keepalive_timeout=settings.webhooks_keepalive_timeout.total_seconds(),
        header_timeout=settings.webhooks_header_timeout.total_seconds(),
        body_timeout=settings.webhooks_body_timeout.total_seconds(),
        max_connections=settings.webhooks_max_connections,
    )


async def run_webhooks(
    settings: Settings,
    stop: asyncio.Event | None = None,
    registry: CollectorRegistry | None = None,
    clock: Clock | None = None,
    handle_signals: bool = True,
    started: asyncio.Event | None = None,
) -> None:
    """Serve the webhooks until ``stop`` is set; ``started`` is set once the ports accept.

    Both ports are bound first: one that cannot be raises ``ConfigurationError`` before
    Kafka or Redis is reached.
    """
    check_settings(settings)
    with listening(
        (settings.webhooks_host, settings.webhooks_port, "CARTPULSE_WEBHOOKS_PORT"),
        (
            settings.webhooks_metrics_host,
            settings.webhooks_metrics_port,
            "CARTPULSE_WEBHOOKS_METRICS_PORT",
        ),
    ) as (public, private):
        await _serve(settings, public, private, stop, registry, clock, handle_signals, started)


async def _serve(
    settings: Settings,
    public: socket.socket,
    private: socket.socket,
    stop: asyncio.Event | None,
    registry: CollectorRegistry | None,
    clock: Clock | None,
    handle_signals: bool,
    started: asyncio.Event | None,
) -> None:
    stop = stop or asyncio.Event()
    registry = registry or CollectorRegistry()
    metrics = WebhookMetrics.create(registry)
    clock = clock or SystemClock()
    policy = load_policy(settings.policy_file)  # the stores: HELP replies, short links
    limits = connection_limits(settings)
    ensure_descriptors(limits.max_connections)
    keys = Keys(settings.effective_redis_key_prefix)
    topics = TopicCatalogue.of(settings)
    written = (Topic.CONSENTS, Topic.CONSENT_HISTORY, Topic.SEND_RESULTS, Topic.ENGAGEMENT)
    wanted = {topics.name(t) for t in written}
    await create_topics(settings, [s for s in topics.specs() if s.name in wanted])
    redis = make_redis(settings)
    kafka = producer(settings)
    try:
        await kafka.start()
        outbox = KafkaOutbox(kafka, topics, ConsentLedger.of(settings, kafka))
        consents = ConsentStore(redis, keys)
        twilio = TwilioHooks(
            TwilioConfig(
                auth_token=settings.twilio_auth_token.get_secret_value(),
                keywords=Keywords.with_extra_opt_outs(settings.webhooks_opt_out_keywords),
                help_reply=help_replies(
                    policy, Renderer(Packs.of(settings, policy)), settings.webhooks_help_reply
                ),
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
            RedisShortLinks(redis, keys),
        )

        async def ready() -> bool:
            try:
                async with asyncio.timeout(1.0):
                    return bool(await redis.ping())
            except UNAVAILABLE_ERRORS:
                return False

        guard = ConnectionGuard(limits, metrics, ThrottledLog(log, clock))
        app = make_app(
            twilio,
            links,
            metrics,
            ready,
            HttpLimits(settings.webhooks_max_body_bytes, limits.body_timeout),
            settings.webhooks_public_url,
            guard,
        )
        runner = web.AppRunner(
            app,
            access_log=None,
            shutdown_timeout=SHUTDOWN_GRACE,
            # aiohttp's own timers are a backstop behind the guard's
            keepalive_timeout=limits.keepalive_timeout + limits.header_timeout + 1,
            lingering_time=limits.body_timeout,  # reading what a 408'd client still sends
        )
        metrics_runner = web.AppRunner(make_metrics_app(registry, ready), access_log=None)
        async with sites_started(
            (runner, lambda r: GuardedSite(r, public, guard)),
            (metrics_runner, lambda r: web.SockSite(r, private)),
        ):
            log.info(
                "webhooks listening on %s:%d, metrics on %s:%d",
                settings.webhooks_host,
                settings.webhooks_port,
                settings.webhooks_metrics_host,
                settings.webhooks_metrics_port,
            )
            await serve_until_stopped(stop, handle_signals, started)
    finally:
        with contextlib.suppress(*INFRA_ERRORS):
            await kafka.stop()
        await redis.aclose()
