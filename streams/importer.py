"""``cartpulse import``: storefront event files → the clickstream and cart topics.

Valid events are produced keyed by ``session_id`` to the input topic of their type; every
invalid line is reported (file, line, reason) and written to the DLQ (or a rejects file), and
never stops the import.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

import orjson

from streams.kafka import dlq_headers
from streams.pacing import Pacer
from streams.sources import SourceRecord
from streams.topics import Topic, TopicCatalogue, input_topic_for

# How many sends may be in flight before we wait for their acks (bounds memory).
MAX_IN_FLIGHT = 5_000


class Producer(Protocol):
    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[object]: ...

    async def flush(self) -> None: ...


@dataclass(slots=True)
class ImportSummary:
    imported: int = 0
    invalid: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    by_topic: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "imported": self.imported,
            "invalid": self.invalid,
            "by_type": dict(sorted(self.by_type.items())),
            "by_topic": dict(sorted(self.by_topic.items())),
            "seconds": round(self.seconds, 3),
        }


class Rejects(Protocol):
    """Where invalid lines go: the DLQ topic, or a file."""

    async def reject(self, record: SourceRecord, topic: Topic) -> None: ...


class DlqRejects:
    def __init__(self, producer: Producer, topics: TopicCatalogue) -> None:
        self._producer = producer
        self._topics = topics
        self.pending: list[asyncio.Future[object]] = []

    async def reject(self, record: SourceRecord, topic: Topic) -> None:
        reason = record.reason or "invalid"
        future = await self._producer.send(
            self._topics.dlq(topic),
            value=record.line,
            key=None,
            headers=dlq_headers(reason, record.source, self._topics.name(topic)),
        )
        self.pending.append(future)


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


async def import_records(
    records: Iterable[SourceRecord],
    producer: Producer,
    topics: TopicCatalogue,
    rejects: Rejects,
    pacer: Pacer | None = None,
    on_record: Callable[[SourceRecord], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> ImportSummary:
    """Produce every valid record and reject every invalid one; returns when all are acked."""
    summary = ImportSummary()
    started = clock()
    in_flight: list[asyncio.Future[object]] = []
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
            topic = input_topic_for(event.type)
            in_flight.append(
                await producer.send(
                    topics.name(topic), value=record.payload, key=event.session_id.encode()
                )
            )
            summary.imported += 1
            summary.by_type[event.type] += 1
            summary.by_topic[topics.name(topic)] += 1
            if len(in_flight) >= MAX_IN_FLIGHT:
                await asyncio.gather(*in_flight)
                in_flight.clear()
        if on_record is not None:
            on_record(record)
    await producer.flush()
    await asyncio.gather(*in_flight)
    if isinstance(rejects, DlqRejects):
        await asyncio.gather(*rejects.pending)
    summary.seconds = clock() - started
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
