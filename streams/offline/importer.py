"""``cartpulse import``: storefront event files → the clickstream and cart topics; catalogues
→ products.

Valid events are produced keyed by ``session_id`` to the input topic of their type; every
invalid line is reported (file, line, reason) and written to the DLQ (or a rejects file), and
never stops the import: a dead letter holds a bounded excerpt of the line (``dead_letter``). A
record Kafka does not take (a dead letter, or an event while the broker is away past the
producer's retries) is counted in the summary and logged with its line, never raised, so the
summary always tells what was imported and what was not.

Product catalogue files (``import_products``) go to the ``products`` topic the same way, keyed
by ``product_id``, their bad lines to ``products.dlq``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol, cast

import orjson
from aiokafka.errors import KafkaError

from streams.contract.topics import Topic, TopicCatalogue, input_topic_for
from streams.core.pacing import Pacer
from streams.offline.catalogue_file import ProductLine
from streams.offline.sources import SourceRecord
from streams.runtime.kafka import FlushingProducer, Producer, dead_letter

log = logging.getLogger(__name__)

# How many sends may be in flight before we wait for their acks (bounds memory).
MAX_IN_FLIGHT = 5_000


@dataclass(slots=True)
class ImportSummary:
    imported: int = 0
    invalid: int = 0
    failed: int = 0  # valid events Kafka did not take (their lines are logged)
    dlq_failed: int = 0  # invalid lines the DLQ did not take
    by_type: Counter[str] = field(default_factory=Counter)
    by_topic: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "imported": self.imported,
            "invalid": self.invalid,
            "failed": self.failed,
            "dlq_failed": self.dlq_failed,
            "by_type": dict(sorted(self.by_type.items())),
            "by_topic": dict(sorted(self.by_topic.items())),
            "seconds": round(self.seconds, 3),
        }


class Rejects(Protocol):
    """Where invalid lines go: the DLQ topic, or a file."""

    async def reject(self, record: SourceRecord, topic: Topic) -> None: ...


class Deliveries:
    """Records handed to the producer, their acks awaited in ``settle``: a record Kafka does not
    take (refused, or timed out while the broker was away past the producer's retries) is
    counted in ``failed`` and logged with its source line, never raised."""

    def __init__(self, producer: Producer, what: str) -> None:
        self._producer = producer
        self._what = what
        self.pending: list[asyncio.Future[object]] = []
        self.failed = 0

    async def send(
        self,
        source: str,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        try:
            future = await self._producer.send(topic, value=value, key=key, headers=headers)
        except KafkaError as exc:
            self._failed(source, exc)
        else:
            future.add_done_callback(lambda done: self._done(source, done))
            self.pending.append(future)

    async def settle(self) -> int:
        """Wait for every pending ack; returns how many records failed so far."""
        await asyncio.gather(*self.pending, return_exceptions=True)
        self.pending.clear()
        return self.failed

    def _done(self, source: str, future: asyncio.Future[object]) -> None:
        if not future.cancelled() and future.exception() is not None:
            self._failed(source, future.exception())

    def _failed(self, source: str, exc: BaseException | None) -> None:
        self.failed += 1
        log.error("Kafka did not take the %s of %s: %r", self._what, source, exc)


class DlqRejects:
    """Invalid lines to their topic's DLQ, each a bounded ``dead_letter``; one the broker
    refuses is counted (``deliveries.failed``), never raised: the import goes on."""

    def __init__(self, producer: Producer, topics: TopicCatalogue) -> None:
        self._topics = topics
        self.deliveries = Deliveries(producer, "dead letter")

    async def reject(self, record: SourceRecord, topic: Topic) -> None:
        letter = dead_letter(
            record.line, record.reason or "invalid", record.source, self._topics.name(topic)
        )
        await self.deliveries.send(
            record.source, self._topics.dlq(topic), letter.value, headers=letter.headers
        )


class FileRejects:
    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle

    async def reject(self, record: SourceRecord, topic: Topic) -> None:
        line = {
            "source": record.source,
            "reason": record.reason,
            "line": record.line.decode("utf-8", errors="replace"),
        }
        self._handle.write(orjson.dumps(line) + b"\n")


def open_rejects(
    path: Path | None, stack: contextlib.ExitStack, producer: Producer, topics: TopicCatalogue
) -> Rejects:
    """An import's ``--rejects``: ``path`` (created or truncated, closed with ``stack``), or
    each topic's DLQ through ``producer`` when there is none."""
    if path is not None:
        return FileRejects(cast(IO[bytes], stack.enter_context(path.open("wb"))))
    return DlqRejects(producer, topics)


async def import_records(
    records: Iterable[SourceRecord],
    producer: FlushingProducer,
    topics: TopicCatalogue,
    rejects: Rejects,
    pacer: Pacer | None = None,
    on_record: Callable[[SourceRecord], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> ImportSummary:
    """Produce every valid record and reject every invalid one; returns when all are acked.

    Raises nothing for a record Kafka does not take: the summary counts it (``failed``, or
    ``dlq_failed`` for a dead letter) and the log names its line.
    """
    summary = ImportSummary()
    started = clock()
    events = Deliveries(producer, "event")
    for record in records:
        event = record.event
        if event is None or record.payload is None:
            summary.invalid += 1
            summary.reasons[_reason_kind(record.reason)] += 1
            await rejects.reject(record, _topic_of_line(record.line))
        else:
            if pacer is not None:
                wait = pacer.delay(clock(), event.occurred_at)
                if wait > 0:
                    await asyncio.sleep(wait)
            topic = topics.name(input_topic_for(event.type))
            await events.send(record.source, topic, record.payload, event.session_id.encode())
            summary.imported += 1
            summary.by_type[event.type] += 1
            summary.by_topic[topic] += 1
            if len(events.pending) >= MAX_IN_FLIGHT:
                await events.settle()
        if on_record is not None:
            on_record(record)
    await producer.flush()
    summary.failed = await events.settle()
    summary.imported -= summary.failed
    if isinstance(rejects, DlqRejects):
        summary.dlq_failed = await rejects.deliveries.settle()
    summary.seconds = clock() - started
    return summary


async def import_products(
    lines: Iterable[ProductLine],
    producer: FlushingProducer,
    topics: TopicCatalogue,
    rejects: Rejects,
) -> ImportSummary:
    """Produce every valid product version to ``products`` keyed by ``product_id`` (in its
    canonical shape, ``ProductVersion.to_json``) and reject every invalid line to the products
    DLQ; returns when all are acked. Raises nothing for a record Kafka does not take, as
    ``import_records``."""
    summary = ImportSummary()
    started = time.monotonic()
    versions = Deliveries(producer, "product version")
    topic = topics.name(Topic.PRODUCTS)
    for item in lines:
        version = item.version
        if version is None:
            summary.invalid += 1
            summary.reasons[_reason_kind(item.reason)] += 1
            record = SourceRecord(item.source, item.line, None, None, item.reason)
            await rejects.reject(record, Topic.PRODUCTS)
            continue
        await versions.send(item.source, topic, version.to_json(), version.product_id.encode())
        summary.imported += 1
        summary.by_topic[topic] += 1
        if len(versions.pending) >= MAX_IN_FLIGHT:
            await versions.settle()
    await producer.flush()
    summary.failed = await versions.settle()
    summary.imported -= summary.failed
    if isinstance(rejects, DlqRejects):
        summary.dlq_failed = await rejects.deliveries.settle()
    summary.seconds = time.monotonic() - started
    return summary


def _topic_of_line(line: bytes) -> Topic:
    """The input topic a rejected line would have gone to, when its type can still be read."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        return Topic.CLICKSTREAM
    if isinstance(data, dict) and isinstance(data.get("type"), str):
        return input_topic_for(data["type"])
    return Topic.CLICKSTREAM


def _reason_kind(reason: str | None) -> str:
    """A short, low-cardinality kind of a reason, for the summary ("not valid JSON: ..." → ...)."""
    if not reason:
        return "invalid"
    return reason.split(":", 1)[0].split(" (", 1)[0][:60]


def total_bytes(paths: Iterable[Path]) -> int:
    return sum(p.stat().st_size for p in paths)
