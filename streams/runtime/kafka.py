"""Kafka plumbing shared by the CLI tools: clients from settings, topic creation, DLQ records."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner

from streams.contract.topics import TopicSpec
from streams.runtime.settings import Settings

log = logging.getLogger(__name__)

LEADERS_WITHIN_S = 30.0  # how long create_topics waits for the new topics' leaders
LEADERS_POLL_S = 0.1
REASON_HEADER = "cartpulse.reason"
SOURCE_HEADER = "cartpulse.source"
ORIGINAL_TOPIC_HEADER = "cartpulse.original_topic"
ORIGINAL_BYTES_HEADER = "cartpulse.original_bytes"
ORIGINAL_SHA256_HEADER = "cartpulse.original_sha256"
# A dead letter holds at most this much of the rejected payload: every record within the event
# contract's size (64 KiB) whole, and far below what a broker refuses (about 1 MB by default).
DLQ_EXCERPT_BYTES: Final = 64 * 1024
MAX_HEADER_TEXT_BYTES: Final = 1024
# What every cartpulse producer promises, the worker's Faust producer too
# (streams/agents/batching.py): a write is acknowledged once every in-sync replica has it
# (min.insync.replicas of them at least, Settings.topic_configs), and a send retried after a
# broker failed is written once.
PRODUCER_GUARANTEES: Final[dict[str, object]] = {"acks": "all", "enable_idempotence": True}


class ConsumedRecord(Protocol):
    """One consumed record as cartpulse reads it: Faust's ``Message`` in the worker, aiokafka's
    ``ConsumerRecord`` in the senders."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


class Producer(Protocol):
    """What the collector and the importer need of a producer (``AIOKafkaProducer`` is one).

    ``send`` returns once the record is queued (it raises ``KafkaError`` when it is refused
    at once); the future it returns resolves on Kafka's ack, or fails with ``KafkaError``.
    """

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[object]: ...


class FlushingProducer(Producer, Protocol):
    """A ``Producer`` whose ``flush`` waits until every queued record was sent."""

    async def flush(self) -> None: ...


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A dead-letter record's value and headers (see ``dead_letter``)."""

    value: bytes | None
    headers: list[tuple[str, bytes]]


def partition_of(key: bytes, partitions: int | Collection[int]) -> int:
    """The partition Kafka's default partitioner (murmur2, as every cartpulse producer and the
    Java client use) gives a record keyed by ``key``: ``partitions`` is the topic's partition
    count or its partitions (``AIOKafkaProducer.partitions_for``)."""
    ordered = list(range(partitions)) if isinstance(partitions, int) else sorted(partitions)
    return int(DefaultPartitioner()(key, ordered, ordered))


def dead_letter(payload: bytes | None, reason: str, source: str, original_topic: str) -> DeadLetter:
    """The DLQ record of a rejected payload, bounded whatever the payload's size.

    The value is the payload's first ``DLQ_EXCERPT_BYTES`` (the whole payload when it is within
    the contract's size); the headers say why and where from, and carry the payload's full
    length and SHA-256, so a truncated excerpt can still be matched to its original.
    """
    headers = dlq_headers(reason, source, original_topic)
    if payload is None:
        return DeadLetter(None, headers)
    headers.append((ORIGINAL_BYTES_HEADER, str(len(payload)).encode()))
    headers.append((ORIGINAL_SHA256_HEADER, hashlib.sha256(payload).hexdigest().encode()))
    return DeadLetter(payload[:DLQ_EXCERPT_BYTES], headers)


def dlq_headers(reason: str, source: str, original_topic: str) -> list[tuple[str, bytes]]:
    """Headers of a dead-letter record: why it was rejected, where it came from (each at most
    ``MAX_HEADER_TEXT_BYTES``). ``dead_letter`` builds the whole record."""
    return [
        (REASON_HEADER, _bounded(reason)),
        (SOURCE_HEADER, _bounded(source)),
        (ORIGINAL_TOPIC_HEADER, _bounded(original_topic)),
    ]


def _bounded(text: str) -> bytes:
    raw = text.encode("utf-8", errors="replace")
    if len(raw) <= MAX_HEADER_TEXT_BYTES:
        return raw
    return raw[: MAX_HEADER_TEXT_BYTES - 3].decode("utf-8", errors="ignore").encode() + b"..."


def producer(settings: Settings, **overrides: object) -> AIOKafkaProducer:
    """An idempotent producer (acks=all, ``PRODUCER_GUARANTEES``) that batches; start and stop
    it yourself."""
    options: dict[str, object] = {
        **settings.kafka_client_options(),
        **PRODUCER_GUARANTEES,
        "linger_ms": 10,
        "max_batch_size": 512 * 1024,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


@dataclass(frozen=True, slots=True)
class TopicsReport:
    created: list[str]
    existing: list[str]
    mismatched: list[str]  # existing topics whose partition count differs from the settings


async def create_topics(settings: Settings, specs: Sequence[TopicSpec]) -> TopicsReport:
    """Create the topics that do not exist yet; idempotent.

    Existing topics are left as they are (their partition count is reported when it differs,
    since changing it would move keys between partitions).
    """
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [spec for spec in specs if spec.name not in existing]
        created: list[str] = []
        for spec in wanted:
            topic = NewTopic(
                spec.name,
                num_partitions=settings.topic_partitions,
                replication_factor=settings.topic_replication,
                topic_configs={**settings.topic_configs(), **spec.configs},
            )
            try:
                await admin.create_topics([topic])
            except TopicAlreadyExistsError:
                existing.add(spec.name)  # created by someone else meanwhile: fine
            else:
                created.append(spec.name)
        if created:
            await wait_for_leaders(admin, created, settings.topic_partitions)
        present = [spec.name for spec in specs if spec.name in existing]
        described = await admin.describe_topics(present) if present else []
        mismatched = [
            str(meta.get("topic") or meta.get("name"))
            for meta in described
            if len(meta.get("partitions", [])) != settings.topic_partitions
        ]
        return TopicsReport(created, present, mismatched)
    finally:
        await admin.close()


async def wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str], partitions: int) -> None:
    """Wait until the broker's metadata gives every partition of ``names`` a leader: a topic
    is created at the controller, and a client that asks a broker for it before its metadata
    has it is told it does not exist (aiokafka logs that at ERROR, then tries again).
    A retriable error (the broker restarting, say) is asked again; others raise. Gives up
    with a warning after ``LEADERS_WITHIN_S``."""
    deadline = asyncio.get_running_loop().time() + LEADERS_WITHIN_S
    waiting = names
    while True:
        try:
            described = await admin.describe_topics(waiting)
        except KafkaError as exc:
            if not exc.retriable:
                raise
            log.debug("asking again for the new topics' leaders: %r", exc)
        else:
            waiting = [
                str(meta.get("topic"))
                for meta in described
                if meta.get("error_code")
                or len(meta.get("partitions", [])) < partitions
                or any(p.get("leader", -1) < 0 for p in meta.get("partitions", []))
            ]
            if not waiting:
                return
        if asyncio.get_running_loop().time() >= deadline:
            log.warning(
                "topics created but without a leader for every partition after %.0f s: %s",
                LEADERS_WITHIN_S, ", ".join(waiting),
            )  # fmt: skip
            return
        await asyncio.sleep(LEADERS_POLL_S)


async def topic_offsets(
    settings: Settings, names: Sequence[str]
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    """Beginning and end offsets of every partition of the named topics that exist."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        described = await admin.describe_topics(list(names))
    finally:
        await admin.close()
    tps = [
        TopicPartition(meta["topic"], part["partition"])
        for meta in described
        if meta.get("error_code") == 0
        for part in meta["partitions"]
    ]
    if not tps:
        return {}, {}
    consumer = AIOKafkaConsumer(
        **settings.kafka_client_options(), group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    # aiokafka 0.14 cancels and then awaits a group-less consumer's background task in stop();
    # if that task never ran, the CancelledError escapes. Let it start first.
    await asyncio.sleep(0)
    try:
        consumer.assign(tps)
        return await consumer.beginning_offsets(tps), await consumer.end_offsets(tps)
    finally:
        await consumer.stop()


async def topic_counts(settings: Settings, names: Sequence[str]) -> dict[str, int]:
    """Records currently held by each topic (end minus beginning offsets; absent → 0)."""
    starts, ends = await topic_offsets(settings, names)
    counts = dict.fromkeys(names, 0)
    for tp, end in ends.items():
        counts[tp.topic] += end - starts[tp]
    return counts


async def group_lag(
    settings: Settings,
    group_id: str,
    names: Sequence[str],
    upto: Mapping[TopicPartition, int] | None = None,
) -> int:
    """Records of the named topics that ``group_id`` has not committed yet; with ``upto``,
    only those before its offset of their partition (a topic others keep writing to, such as
    the ticks, has an end that keeps moving)."""
    starts, ends = await topic_offsets(settings, names)
    if upto is not None:
        ends = {tp: min(end, upto.get(tp, end)) for tp, end in ends.items()}
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group_id, partitions=list(ends))
    finally:
        await admin.close()
    lag = 0
    for tp, end in ends.items():
        meta = committed.get(tp)
        position = meta.offset if meta is not None and meta.offset >= 0 else starts[tp]
        lag += max(0, end - position)
    return lag


async def read_all(settings: Settings, name: str) -> AsyncIterator[bytes]:
    """Every value the topic holds now (tombstones left out); no group."""
    async for record in read_records(settings, name):
        if record.value is not None:
            yield record.value


async def read_records(
    settings: Settings, name: str, partitions: Collection[int] | None = None
) -> AsyncIterator[ConsumerRecord[Any, Any]]:
    """Every record the topic holds now (of ``partitions`` only, when given), each partition
    in offset order; no group."""
    starts, ends = await topic_offsets(settings, [name])
    todo = {
        tp: end
        for tp, end in ends.items()
        if end > starts[tp] and (partitions is None or tp.partition in partitions)
    }
    if not todo:
        return
    consumer = AIOKafkaConsumer(
        **settings.kafka_client_options(), group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    await asyncio.sleep(0)  # see topic_offsets: let the background task start before stop()
    try:
        consumer.assign(list(todo))
        for tp in todo:
            consumer.seek(tp, starts[tp])
        while todo:
            batch = await consumer.getmany(*todo, timeout_ms=1000)
            for tp, records in batch.items():
                for record in records:
                    if record.offset < todo.get(tp, 0):
                        yield record
                if records and records[-1].offset + 1 >= todo.get(tp, 0):
                    todo.pop(tp, None)
    finally:
        await consumer.stop()


async def delete_topics(settings: Settings, prefix: str, dry_run: bool = False) -> list[str]:
    """Delete every topic whose name starts with ``prefix`` (a test's, a replay's, a demo's,
    workers' changelogs included); returns their names, sorted. ``dry_run`` only names them."""
    if not prefix:
        raise ValueError("refusing to delete every topic: give a prefix")
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        names = sorted(name for name in await admin.list_topics() if name.startswith(prefix))
        if names and not dry_run:
            await admin.delete_topics(names)
        return names
    finally:
        await admin.close()
