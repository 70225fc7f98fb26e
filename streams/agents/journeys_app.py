"""Wires the journeys agent and the re-keying agent into the worker's Faust app.

The journeys' inputs take the batch path, as the detector's do (streams/agents/batching.py):
each fetch's messages of the inputs go to ``JourneyShell.on_record`` one by one, the states
they changed are written in one table write per partition (``JourneyShell.flush``,
streams/agents/changelog.py), and the messages are acknowledged after that (but those of a
partition revoked meanwhile). An erasure is handled as Faust's current event: its subject goes
into the ``journeys-erased`` table through Faust. Through Faust's per-message path (its
conductor and a stream's queue) a partition whose queue filled up was taken out of the fetch
until the queue drained, and across a rebalance that could leave it unread for good."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from faust.types import Message
from prometheus_client import CollectorRegistry

from streams.agents.batching import acting_for
from streams.agents.catalogue import install_catalogue
from streams.agents.changelog import ChangelogTable
from streams.agents.journeys import JourneyShell
from streams.agents.rekeying import KEY_HEADER, SOURCE_HEADER, rekey
from streams.contract.topics import Topic, TopicCatalogue
from streams.runtime.metrics import JourneyMetrics
from streams.runtime.settings import Settings

log = logging.getLogger(__name__)
# The journeys wait at most this long for the catalogue before their first record, then go on.
CATALOGUE_WAIT_SECONDS = 300.0
YIELD_EVERY = 200  # records of a batch between yields to the loop (ticks, the detector)
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
        table=ChangelogTable(app, table),  # a batch's states in one write per partition
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
    erasures = topics.name(Topic.ERASURES)

    catalogue_read = False

    async def on_batch(messages: Sequence[Message]) -> None:
        nonlocal catalogue_read
        if not catalogue_read:  # nothing is judged before the catalogue is read (a bounded wait)
            await reader.wait_until_read(CATALOGUE_WAIT_SECONDS)
            catalogue_read = True
        shell.begin()
        for count, message in enumerate(messages, 1):
            record = message.topic, message.partition, message.key, message.value, message.headers
            if message.topic == erasures:  # the erased subjects' table is written by Faust
                event = app.create_event(message.key, message.value, message.headers, message)
                with acting_for(event):
                    await shell.on_record(*record)
            else:
                await shell.on_record(*record)
            if count % YIELD_EVERY == 0:
                await asyncio.sleep(0)
        await shell.flush()
        ack, dropped = app.consumer.ack, shell.dropped
        for message in messages:
            if message.partition not in dropped:
                ack(message)

    app.deliver_batches(names, on_batch)

    @app.agent(channel, concurrency=1, name="journeys")  # type: ignore[untyped-decorator]  # faust is untyped
    async def journeys(stream: Any) -> None:
        # Subscribes the inputs (so the assignor co-partitions them with the table). Their
        # messages arrive through the batch path; nothing is ever delivered here.
        async for _ in stream:
            log.error("a journeys input bypassed the batch path")

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
