"""Wiring of ``cartpulse collect``: settings in, a running aiohttp service out.

Binds its two ports first (the public one: ``/v1/events`` and probes; the metrics one, private
by default), so a bad address ends the process at once with ``ConfigurationError`` (exit 2).
Then creates the topics it writes (the inputs and their DLQs), starts the idempotent producer
(``acks=all``) before the sites accept requests and stops it after they stopped, and serves
until ``stop`` is set or SIGTERM / SIGINT arrives; requests in flight get ``SHUTDOWN_GRACE`` to
finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Final

from aiohttp import web
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from streams.collector.auth import Credentials
from streams.collector.metrics import CollectorMetrics
from streams.collector.outbox import Outbox
from streams.collector.routes import Limits, make_app, make_metrics_app
from streams.contract.errors import ConfigurationError
from streams.contract.topics import Topic, TopicCatalogue
from streams.runtime.binding import listening
from streams.runtime.kafka import create_topics, producer
from streams.runtime.serving import serve_until_stopped, sites_started
from streams.runtime.settings import Settings

log = logging.getLogger(__name__)

SHUTDOWN_GRACE: Final = 10.0  # seconds requests in flight get to finish on SIGTERM
READY_TIMEOUT: Final = 1.0  # seconds /readyz waits for Kafka's metadata


def credentials(settings: Settings) -> Credentials:
    return Credentials(
        secrets={
            store: secret.get_secret_value().encode()
            for store, secret in settings.collect_tokens.items()
        },
        pixel_keys={store: key.encode() for store, key in settings.collect_pixel_keys.items()},
        allowed_origins=frozenset(settings.collect_allowed_origins),
    )


def check_settings(settings: Settings) -> None:
    """Refuse to start a collector nobody can send to."""
    if not settings.collect_tokens and not settings.collect_pixel_keys:
        raise ConfigurationError(
            "the collector needs CARTPULSE_COLLECT_TOKENS (a JSON object store_id → secret) "
            "or CARTPULSE_COLLECT_PIXEL_KEYS"
        )
    empty = [s for s, secret in settings.collect_tokens.items() if not secret.get_secret_value()]
    if empty:
        raise ConfigurationError(f"CARTPULSE_COLLECT_TOKENS: empty secret for {', '.join(empty)}")
    if settings.collect_pixel_keys and not settings.collect_allowed_origins:
        raise ConfigurationError(
            "CARTPULSE_COLLECT_PIXEL_KEYS needs CARTPULSE_COLLECT_ALLOWED_ORIGINS: a pixel key "
            "is only taken from the storefront's own origins"
        )


async def run_collector(
    settings: Settings,
    stop: asyncio.Event | None = None,
    registry: CollectorRegistry | None = None,
    handle_signals: bool = True,
    started: asyncio.Event | None = None,
) -> None:
    """Serve until ``stop`` is set; ``started`` is set once both ports accept."""
    check_settings(settings)
    with listening(
        (settings.collect_host, settings.collect_port, "CARTPULSE_COLLECT_PORT"),
        (
            settings.collect_metrics_host,
            settings.collect_metrics_port,
            "CARTPULSE_COLLECT_METRICS_PORT",
        ),
    ) as (public, private):
        await _serve(settings, public, private, stop, registry, handle_signals, started)


async def _serve(
    settings: Settings,
    public: socket.socket,
    private: socket.socket,
    stop: asyncio.Event | None,
    registry: CollectorRegistry | None,
    handle_signals: bool,
    started: asyncio.Event | None,
) -> None:
    stop = stop or asyncio.Event()
    registry = registry or CollectorRegistry()
    metrics = CollectorMetrics.create(registry)
    topics = TopicCatalogue.of(settings)
    inputs = (Topic.CLICKSTREAM, Topic.CART)
    wanted = {topics.name(t) for t in inputs} | {topics.dlq(t) for t in inputs}
    await create_topics(settings, [s for s in topics.specs() if s.name in wanted])
    kafka = producer(settings)
    try:
        await kafka.start()
        timeout = settings.collect_produce_timeout.total_seconds()
        outbox = Outbox(kafka, topics, timeout, retry_after=max(1.0, timeout / 2))

        async def ready() -> bool:
            return await kafka_reachable(kafka)

        limits = Limits(
            max_body_bytes=settings.collect_max_body_bytes,
            max_events=settings.collect_max_events,
            max_record_bytes=settings.max_record_bytes,
        )
        app = make_app(credentials(settings), outbox, metrics, ready, limits)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_GRACE)
        metrics_runner = web.AppRunner(make_metrics_app(registry, ready), access_log=None)
        async with sites_started(
            (runner, lambda r: web.SockSite(r, public)),
            (metrics_runner, lambda r: web.SockSite(r, private)),
        ):
            log.info(
                "collector listening on %s:%d, metrics on %s:%d",
                settings.collect_host,
                settings.collect_port,
                settings.collect_metrics_host,
                settings.collect_metrics_port,
            )
            await serve_until_stopped(stop, handle_signals, started)
    finally:
        with contextlib.suppress(KafkaError, OSError):
            await kafka.stop()


async def kafka_reachable(kafka: AIOKafkaProducer) -> bool:
    """Whether a broker answers a metadata request within ``READY_TIMEOUT``."""
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            await kafka.client.fetch_all_metadata()
    except (TimeoutError, KafkaError, OSError):
        return False
    return True
