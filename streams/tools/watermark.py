"""Telling a worker that its input is over up to a time, and waiting until it has read it.

``send_watermark`` is what ``cartpulse watermark`` and ``cartpulse replay`` do: wait until the
detector has read its inputs, tick the detector and wait until it has taken the ticks (so the
abandonments they close are written), then — when the worker runs the journeys —
wait until the journeys have read theirs (orders, abandonments, profiles, consents, clicks and
opens, and the re-keyed copies) and tick them. So no order, consent or click reaches the
journeys after a step it should have stopped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from streams.agents.roster import agents_of
from streams.contract.errors import CartpulseError
from streams.contract.topics import Topic, TopicCatalogue
from streams.core.watermarks import ticks
from streams.runtime.kafka import group_lag, producer
from streams.runtime.settings import Settings

DETECTOR_INPUTS = (Topic.CLICKSTREAM, Topic.CART)
# erasures too: a replay's journeys know who was erased before any event comes
AUDIENCE = (Topic.CUSTOMERS, Topic.CONSENTS, Topic.ERASURES)
JOURNEY_SOURCES = (
    *AUDIENCE,
    Topic.SEND_RESULTS,
    Topic.ORDERS,
    Topic.ABANDONMENTS,
    Topic.ENGAGEMENT,
)


async def lag_or_unknown(
    settings: Settings,
    group: str,
    topics: Sequence[str],
    upto: Mapping[TopicPartition, int] | None = None,
) -> int | None:
    """The group's lag (before ``upto``'s offsets, when given), or None while the broker can't
    say (no coordinator elected yet)."""
    try:
        return await group_lag(settings, group, topics, upto)
    except KafkaError as exc:
        if not exc.retriable:
            raise
        return None


async def wait_for_group(
    settings: Settings,
    topics: Sequence[Topic],
    patience: float,
    upto: Mapping[TopicPartition, int] | None = None,
) -> None:
    """Until the worker's group has read everything ``topics`` hold (with ``upto``: everything
    before its offsets); raises after ``patience``."""
    group = settings.worker_group
    names = [TopicCatalogue.of(settings).name(t) for t in topics]
    deadline = time.monotonic() + patience
    while (lag := await lag_or_unknown(settings, group, names, upto)) != 0:
        if time.monotonic() > deadline:
            left = "an unknown number of" if lag is None else f"{lag:,}"
            raise CartpulseError(
                f"the worker group {group} still has {left} records of {', '.join(names)} to "
                f"read after {patience:.0f}s; is a worker running? (--no-wait sends anyway)"
            )
        await asyncio.sleep(0.5)


async def wait_for_journey_inputs(
    settings: Settings, sources: Sequence[Topic], patience: float
) -> None:
    """Until the journeys have read ``sources`` and then the re-keyed copies of consents and
    results, which are written only after their sources are read."""
    await wait_for_group(settings, sources, patience)
    await wait_for_group(settings, [Topic.JOURNEY_INPUTS], patience)


async def runs_journeys(settings: Settings) -> bool:
    """Whether the worker runs the journeys, as it said when it started
    (streams/agents/roster.py)."""
    return "journeys" in (await agents_of(settings) or ())


async def send_watermark(settings: Settings, watermark: int, wait: bool, patience: float) -> None:
    """See the module docstring; ``wait=False`` ticks at once."""
    catalogue = TopicCatalogue.of(settings)
    kafka = producer(settings)
    try:
        await kafka.start()

        async def tick(topic: Topic) -> dict[TopicPartition, int]:
            """One tick per partition; the offset after each."""
            name, wall_ms = catalogue.name(topic), int(time.time() * 1000)
            after = {}
            for partition, value in ticks(settings.topic_partitions, wall_ms, watermark):
                sent = await kafka.send_and_wait(name, value, partition=partition)
                after[TopicPartition(name, partition)] = sent.offset + 1
            return after

        if wait:
            # The watermark promises that no older event will come: sent before the detector
            # has read what is already in its inputs, it would make those events late. Events
            # keyed by something else come back re-keyed on the repartition topic: those too.
            await wait_for_group(settings, DETECTOR_INPUTS, patience)
            await wait_for_group(settings, [Topic.REPARTITION], patience)
        sent = await tick(Topic.TICKS)
        if wait:
            # The detector acknowledges a tick once the abandonments it closed are on their
            # topic: until then the journeys' lag below would not count them. Only up to these
            # ticks: the leader keeps ticking, and the workers of a group commit each on their
            # own schedule, so the whole topic's lag is seldom 0 on every partition at once.
            await wait_for_group(settings, [Topic.TICKS], patience, upto=sent)
        if wait and await runs_journeys(settings):
            await wait_for_journey_inputs(settings, JOURNEY_SOURCES, patience)
        await tick(Topic.JOURNEY_TICKS)
    finally:
        await kafka.stop()
