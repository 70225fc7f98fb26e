"""``cartpulse forget``: erase a customer (docs/compliance.md, Erasure).

1. The request goes to ``erasures`` (keyed by the customer's pseudonym, on the partition of
   the customer id, so the journeys read it with the customer's other inputs); the customer's
   profile gets a tombstone on ``customers``; ``erased:<subject>:<channel>`` on ``consents``
   retires the id at once for the senders (a command already queued is refused). This part
   confirms itself on ``erasures.done`` as ``customers``.
2. The parts confirm on ``erasures.done``: ``journeys`` (state, scheduled steps, suppression
   list, consent tombstones), ``detector:<partition>`` for every partition (sessions), and
   ``senders`` (Redis). ``forget`` waits for them (``wait``), then
3. closes the request: the same key gets the request without the customer id, which is what
   ``erasures`` keeps for good and what a replay reads to keep the customer out.

A part that does not confirm in time leaves the request open (the id stays on ``erasures``
until it is closed); running the same command again re-sends it and waits again.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Final

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.contract.commands import CHANNELS
from streams.contract.erasure import (
    MAX_REASON_CHARS,
    Done,
    Erasure,
    Part,
    erased_record,
    parse_done,
)
from streams.contract.errors import ConfigurationError, InvalidRecord
from streams.contract.privacy import Pseudonyms
from streams.contract.topics import Topic, TopicCatalogue
from streams.runtime.kafka import create_topics, partition_of, producer, topic_offsets
from streams.runtime.settings import Settings

WAITED_PARTS: Final[tuple[Part, ...]] = ("journeys", "detector", "senders")
_EMAIL = re.compile(r"[^\s@]+@[^\s@]+")
_NUMBER = re.compile(r"\d[\d\s().-]{5,}\d")


@dataclass(slots=True)
class ForgetOutcome:
    """What ``forget`` did: the erasure, each confirmation by label, what is still missing."""

    erasure: Erasure
    confirmed: dict[str, Done] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    closed: bool = False


def check_reason(reason: str, customer_id: str) -> str:
    """The reason as kept for good; ``ConfigurationError`` when it could name the person."""
    reason = reason.strip()
    if len(reason) > MAX_REASON_CHARS:
        raise ConfigurationError(f"--reason is kept for good: at most {MAX_REASON_CHARS} chars")
    if customer_id in reason or _EMAIL.search(reason) or _NUMBER.search(reason):
        raise ConfigurationError(
            "--reason is kept for good after the erasure: leave out the customer id, email "
            "addresses and phone numbers (e.g. --reason 'gdpr art. 17 request')"
        )
    return reason


def expected_parts(partitions: int, without: Collection[str] = ()) -> list[str]:
    """The labels of the confirmations ``forget`` waits for."""
    labels: list[str] = []
    for part in WAITED_PARTS:
        if part in without:
            continue
        if part == "detector":
            labels += [f"detector:{p}" for p in range(partitions)]
        else:
            labels.append(part)
    return labels


async def forget(
    settings: Settings,
    customer_id: str,
    reason: str,
    wait: float,
    without: Collection[str] = (),
    clock: Callable[[], float] = time.time,
) -> ForgetOutcome:
    """Request the erasure, wait up to ``wait`` seconds for the parts, close it when all
    confirmed (see the module docstring). ``wait`` 0: request only."""
    if not customer_id.strip():
        raise ConfigurationError("forget needs the customer id")
    reason = check_reason(reason, customer_id)
    catalogue = TopicCatalogue.of(settings)
    await create_topics(settings, catalogue.specs())
    erasures, done_topic = catalogue.name(Topic.ERASURES), catalogue.name(Topic.ERASURES_DONE)
    _, done_from = await topic_offsets(settings, [done_topic])
    kafka = producer(settings)
    await kafka.start()
    try:
        partitions = await kafka.partitions_for(erasures)
        partition = partition_of(customer_id.encode(), partitions)
        erasure = Erasure(
            subject=Pseudonyms.of(settings).customer(customer_id),
            request_id=f"er-{uuid.uuid4().hex[:20]}",
            requested_at_ms=int(clock() * 1000),
            reason=reason,
            customer_id=customer_id,
        )
        outcome = ForgetOutcome(erasure)
        await _request(kafka, catalogue, erasure, partition)
        done = Done(erasure.subject, erasure.request_id, "customers", int(clock() * 1000))
        await kafka.send_and_wait(done_topic, done.to_json(), key=done.key)
        outcome.confirmed[done.label] = done
        if wait <= 0:
            outcome.missing = expected_parts(len(partitions), without)
            return outcome
        wanted = expected_parts(len(partitions), without)
        outcome.confirmed |= await _confirmations(settings, done_from, erasure, wanted, wait)
        outcome.missing = [label for label in wanted if label not in outcome.confirmed]
        if not outcome.missing:
            closed = erasure.closed(int(clock() * 1000))
            await kafka.send_and_wait(
                erasures, closed.to_json(), key=closed.subject.encode(), partition=partition
            )
            outcome.erasure, outcome.closed = closed, True
        return outcome
    finally:
        await kafka.stop()


async def _request(
    kafka: AIOKafkaProducer, catalogue: TopicCatalogue, erasure: Erasure, partition: int
) -> None:
    """The request, the profile's tombstone and the retired id's consent records, acked."""
    assert erasure.customer_id is not None  # noqa: S101 - an open request
    await kafka.send_and_wait(
        catalogue.name(Topic.ERASURES),
        erasure.to_json(),
        key=erasure.subject.encode(),
        partition=partition,
    )
    await kafka.send_and_wait(
        catalogue.name(Topic.CUSTOMERS), None, key=erasure.customer_id.encode()
    )
    for channel in CHANNELS:
        key, value = erased_record(erasure, channel)
        await kafka.send_and_wait(catalogue.name(Topic.CONSENTS), value, key=key)


async def _confirmations(
    settings: Settings,
    start: dict[TopicPartition, int],
    erasure: Erasure,
    wanted: list[str],
    wait: float,
) -> dict[str, Done]:
    """The confirmations of ``erasure`` on ``erasures.done`` written after ``start``, until
    every one of ``wanted`` is there or ``wait`` seconds passed."""
    found: dict[str, Done] = {}
    consumer = AIOKafkaConsumer(
        **settings.kafka_client_options(), group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    await asyncio.sleep(0)  # let the group-less consumer's task start (see catalogue.py)
    try:
        consumer.assign(list(start))
        for tp, offset in start.items():
            consumer.seek(tp, offset)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and not set(wanted) <= found.keys():
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    try:
                        done = parse_done(record.value)
                    except InvalidRecord:
                        continue
                    if done.request_id == erasure.request_id:
                        found[done.label] = done
    finally:
        await consumer.stop()
    return found
