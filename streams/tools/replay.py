"""``cartpulse replay``: rerun a time range of the input topics in event mode, in a namespace.

1. Copies all of ``customers``, ``consents`` and ``products`` (compacted: the latest profiles,
   consents and product versions) into topics prefixed ``<prefix><namespace>.``, runs a worker
   over the namespace in ``event`` mode (never the wall clock) until its journeys hold the
   profiles and consents: who may be messaged is known before the first step falls due, as it
   was when the events happened. The worker stops. (Every worker reads the whole catalogue
   when it starts, before its journeys judge anything.)
2. Copies the records of ``clickstream``, ``cart`` and ``engagement`` (clicks and opens, which
   steps' conditions read) whose payload ``occurred_at`` lies in ``[from, to)`` — to the same
   partition, in the same order — and only then starts the worker again (its state comes
   back): the detector's watermark needs every input in Kafka before it reads them
   (docs/semantics.md). Once it has read them, says the input is over (``watermark end``) and
   waits until the journeys have taken every abandonment, order and click.
3. Reports what every flow would have sent, deferred or skipped, and why.

Live senders read un-namespaced topics, so nothing replayed is ever delivered; with
``--dry-run`` every command is also marked ``dry_run``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from streams.agents.worker_process import worker_env, worker_process
from streams.contract.errors import CartpulseError, ConfigurationError, InvalidRecord
from streams.contract.events import MAX_EVENT_MS, parse_time
from streams.contract.topics import Topic, TopicCatalogue
from streams.runtime.kafka import create_topics, producer, read_all, read_records, topic_offsets
from streams.runtime.settings import Settings
from streams.tools.report import Report, report_from_topics
from streams.tools.watermark import (
    AUDIENCE,
    DETECTOR_INPUTS,
    lag_or_unknown,
    send_watermark,
    wait_for_journey_inputs,
)

NAMESPACE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
QUIET_SECONDS = 3.0
# What a replay copies: these topics whole, first (compacted: the latest of each key) ...
WHOLE = (*AUDIENCE, Topic.PRODUCTS)
# ... then the events of these whose occurred_at lies in the range.
IN_RANGE = (*DETECTOR_INPUTS, Topic.ENGAGEMENT)


@dataclass(slots=True)
class ReplaySummary:
    copied: Counter[str] = field(default_factory=Counter)
    outside: int = 0
    unreadable: int = 0
    commands: Counter[str] = field(default_factory=Counter)
    report: Report = field(default_factory=Report)


def namespaced(settings: Settings, namespace: str) -> Settings:
    if not NAMESPACE.match(namespace):
        raise ConfigurationError("a namespace is 1-64 letters, digits, '_' or '-'")
    return settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}{namespace}."})


async def copy_topics(
    source: Settings,
    target: Settings,
    topics: tuple[Topic, ...],
    window: tuple[int, int] | None,
    summary: ReplaySummary,
) -> None:
    """Copy ``topics`` into the namespace; with a ``window``, only events inside it."""
    src, dst = TopicCatalogue.of(source), TopicCatalogue.of(target)
    await create_topics(target, dst.specs())
    kafka = producer(target)
    await kafka.start()
    try:
        for topic in topics:
            await _copy(source, src.name(topic), dst.name(topic), kafka, window, summary)
        await kafka.flush()
    finally:
        await kafka.stop()


async def wait_for_audience(target: Settings, patience: float) -> None:
    """Until the worker's journeys hold every profile and consent."""
    await wait_for_journey_inputs(target, AUDIENCE, patience)


async def _copy(
    settings: Settings,
    source: str,
    target: str,
    kafka: AIOKafkaProducer,
    window: tuple[int, int] | None,
    summary: ReplaySummary,
) -> None:
    """Each partition's records, in order, to the same partition of ``target``."""
    async for record in read_records(settings, source):
        if window is not None and not _in_window(record.value, window, summary):
            continue
        await kafka.send(target, record.value, key=record.key, partition=record.partition,
                         headers=list(record.headers or ()))  # fmt: skip
        summary.copied[source.rsplit(".", 1)[-1]] += 1


def _in_window(value: bytes | None, window: tuple[int, int], summary: ReplaySummary) -> bool:
    try:
        data = orjson.loads(value or b"")
        occurred = parse_time(data.get("occurred_at") if isinstance(data, dict) else None)
    except (orjson.JSONDecodeError, InvalidRecord):
        # Unreadable records are replayed too: the namespace's DLQ shows them with the reason.
        summary.unreadable += 1
        return True
    if window[0] <= occurred < window[1]:
        return True
    summary.outside += 1
    return False


@contextmanager
def namespace_worker(target: Settings, data_dir: Path, dry_run: bool) -> Iterator[Path]:
    """A worker over the namespace in event mode; yields its log file; stops it on exit."""
    env = worker_env(
        target,
        data_dir,
        CARTPULSE_STORE=target.store,
        CARTPULSE_CLOCK="event",
        CARTPULSE_JOURNEYS_ENABLED="true",
        CARTPULSE_JOURNEYS_DRY_RUN="true" if dry_run else "false",
    )
    log = data_dir / "worker.log"
    with worker_process(env, log):
        yield log


def finish(target: Settings, log: Path, patience: float) -> None:
    """Say the input is over once the worker has read it; wait until the journeys settle."""
    try:
        asyncio.run(send_watermark(target, MAX_EVENT_MS, True, patience))
    except CartpulseError as exc:
        tail = log.read_text(errors="replace")[-2000:]
        raise CartpulseError(f"the replay's worker did not read its input: {exc}\n{tail}") from None
    asyncio.run(wait_for_journeys(target, patience))


async def wait_for_journeys(target: Settings, patience: float) -> None:
    """Until the journeys' inputs are read and nothing new was written for a few seconds."""
    catalogue = TopicCatalogue.of(target)
    read = (Topic.ABANDONMENTS, Topic.ORDERS, Topic.ENGAGEMENT, Topic.JOURNEY_INPUTS)
    inputs = [catalogue.name(t) for t in read]
    outputs = [catalogue.name(t) for t in (Topic.DECISIONS, Topic.SEND_SMS, Topic.SEND_EMAIL)]
    deadline = time.monotonic() + patience
    last, quiet_since = None, time.monotonic()
    while time.monotonic() < deadline:
        _, ends = await topic_offsets(target, outputs)
        written = sum(ends.values())
        if written != last:
            last, quiet_since = written, time.monotonic()
        elif time.monotonic() - quiet_since >= QUIET_SECONDS and (
            await lag_or_unknown(target, target.worker_group, inputs) == 0
        ):
            return
        await asyncio.sleep(0.5)
    raise CartpulseError(f"the replay's journeys did not settle within {patience:.0f}s")


async def collect(target: Settings, summary: ReplaySummary) -> None:
    """The report over the namespace's decisions and recoveries, and its commands by channel."""
    summary.report = await report_from_topics(target)
    catalogue = TopicCatalogue.of(target)
    for topic in (Topic.SEND_SMS, Topic.SEND_EMAIL):
        async for value in read_all(target, catalogue.name(topic)):
            summary.commands[str(orjson.loads(value).get("channel"))] += 1
