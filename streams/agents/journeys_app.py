"""Wires the journeys agent and the re-keying agent into the worker's Faust app."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CollectorRegistry

from streams.agents.batching import settle_producer
from streams.agents.catalogue import install_catalogue
from streams.agents.journeys import KEY_HEADER, SOURCE_HEADER, JourneyShell, rekey
from streams.contract.topics import Topic, TopicCatalogue
from streams.runtime.metrics import JourneyMetrics
from streams.runtime.settings import Settings

log = logging.getLogger(__name__)
# The journeys wait at most this long for the catalogue before their first record, then go on.
CATALOGUE_WAIT_SECONDS = 300.0
Send = Callable[[str, bytes | None, Any, Any], Awaitable[Any]]


def install_journeys(
    app: Any,
    settings: Settings,
    topics: TopicCatalogue,
    registry: CollectorRegistry,
    send: Send,
) -> JourneyShell | None:
    """Add the journeys agents to ``app`` unless ``journeys_enabled`` is off."""
    if not settings.journeys_enabled:
        return None
    from streams.runtime.journey_engine import journey_engine

    engine = journey_engine(settings)
    metrics = JourneyMetrics.create(registry)
    table = app.Table(
        "journeys", key_type=bytes, value_type=bytes, partitions=settings.topic_partitions
    )
    shell = JourneyShell(
        engine=engine,
        topics=topics,
        live=settings.clock == "live",
        table=table,
        send=send,
        metrics=metrics,
        max_record_bytes=settings.max_record_bytes,
        lateness_ms=int(settings.journeys_lateness.total_seconds() * 1000),
    )
    reader = install_catalogue(
        app, settings, topics, registry, send, engine.catalogue, shell.on_version
    )
    names = [
        topics.name(t)
        for t in (
            Topic.ABANDONMENTS,
            Topic.ORDERS,
            Topic.CUSTOMERS,
            Topic.JOURNEY_INPUTS,
            Topic.ENGAGEMENT,
            Topic.JOURNEY_TICKS,
            Topic.ERASURES,  # co-partitioned: streams/agents/journeys_erasure.py
        )
    ]
    channel = app.topic(*names, key_serializer="raw", value_serializer="raw")

    @app.agent(channel, concurrency=1, name="journeys")  # type: ignore[untyped-decorator]  # faust is untyped
    async def journeys(stream: Any) -> None:
        waited = False
        async for event in stream.events():
            if not waited:  # nothing is judged before the catalogue is read (a bounded wait)
                await reader.wait_until_read(CATALOGUE_WAIT_SECONDS)
                waited = True
            message = event.message
            await shell.on_record(
                message.topic, message.partition, event.key, event.value, message.headers
            )
            await settle_producer(app)  # a watermark may have written many states

    consents, results = topics.name(Topic.CONSENTS), topics.name(Topic.SEND_RESULTS)
    kinds = {consents: "consents", results: "send.results"}
    rekeyed_topic = topics.name(Topic.JOURNEY_INPUTS)
    sources = app.topic(consents, results, key_serializer="raw", value_serializer="raw")

    @app.agent(sources, name="journeys-rekey")  # type: ignore[untyped-decorator]  # faust is untyped
    async def rekey_inputs(stream: Any) -> None:
        async for event in stream.events():
            kind = kinds.get(event.message.topic, "consents")
            customer = rekey(kind, event.key, event.value)
            if customer is None:
                metrics.unroutable.labels(kind).inc()
                continue
            headers = [(SOURCE_HEADER, kind.encode()), (KEY_HEADER, event.key or b"")]
            await send(rekeyed_topic, customer, event.value, headers)
            metrics.rekeyed.labels(kind).inc()

    return shell
