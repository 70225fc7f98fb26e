"""What each worker runs, in its own words.

When it starts, a worker writes one record to the compacted ``workers`` topic, keyed by its
worker id: the agents it runs and its clock. ``cartpulse watermark`` and ``cartpulse replay``
read it to know whether to wait for the journeys as well as the detector, rather than guess
from the topics a worker once created.
"""

from __future__ import annotations

import time
from typing import Literal

import orjson

from streams.contract.topics import Topic, TopicCatalogue
from streams.runtime.kafka import producer, read_records
from streams.runtime.settings import Settings

Agent = Literal["detector", "journeys"]


def announcement(settings: Settings, now_ms: int) -> tuple[bytes, bytes]:
    """The key and value a worker with ``settings`` writes when it starts."""
    runs: list[Agent] = ["detector", "journeys"] if settings.journeys_enabled else ["detector"]
    value = {
        "worker_id": settings.worker_id,
        "runs": runs,
        "clock": settings.clock,
        "announced_at": now_ms,
    }
    return settings.worker_id.encode(), orjson.dumps(value)


async def announce(settings: Settings) -> None:
    """Write this worker's record; returns once the broker has it."""
    key, value = announcement(settings, int(time.time() * 1000))
    kafka = producer(settings)
    await kafka.start()
    try:
        await kafka.send_and_wait(TopicCatalogue.of(settings).name(Topic.WORKERS), value, key=key)
    finally:
        await kafka.stop()


async def agents_of(settings: Settings) -> frozenset[str] | None:
    """What the worker ``settings.worker_id`` last said it runs; None if it never said."""
    name = TopicCatalogue.of(settings).name(Topic.WORKERS)
    key = settings.worker_id.encode()
    latest: frozenset[str] | None = None
    async for record in read_records(settings, name):
        if record.key != key:
            continue
        if record.value is None:  # a tombstone: the worker was retired
            latest = None
            continue
        try:
            runs = orjson.loads(record.value).get("runs")
        except (orjson.JSONDecodeError, AttributeError):
            continue  # not a worker's record; the next one may be
        if isinstance(runs, list):
            latest = frozenset(str(agent) for agent in runs)
    return latest
