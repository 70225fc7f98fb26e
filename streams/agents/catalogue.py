"""The worker's catalogue reader: every partition of ``products``, from the beginning, into one
``Catalogue``.

Every worker that runs the journeys reads the whole topic (an assigned consumer, no group, no
committed offsets): the journeys of any partition may need any product. Each record is parsed
(``parse_product``) and added to the shared catalogue; each version the catalogue kept is
handed to ``on_version``. A record that is not a product version goes to ``products.dlq`` with
its reason and is counted; nothing a record holds stops the reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from streams.contract.errors import InvalidRecord
from streams.contract.products import ProductVersion, parse_product
from streams.contract.topics import Topic, TopicCatalogue
from streams.core.catalogue import Catalogue
from streams.runtime.kafka import dead_letter, topic_offsets
from streams.runtime.metrics import CatalogueMetrics
from streams.runtime.settings import Settings

log = logging.getLogger(__name__)

# called with each version the catalogue kept; awaited when it returns an awaitable
OnVersion = Callable[[ProductVersion], Awaitable[None] | None]
# (topic, key, value, headers): the worker's producer, as the journeys agent sends with it
Send = Callable[[str, bytes | None, bytes | None, list[tuple[str, bytes]]], Awaitable[Any]]

FETCH_TIMEOUT_MS = 1000
MAX_RECORDS = 5000
TOPIC_WAIT_SECONDS = 1.0  # between looks for the topic's partitions (absent, Kafka away)
PROGRESS_SECONDS = 10.0  # between log lines while the journeys wait for the catalogue


class CatalogueReader:
    """Reads ``products`` into ``catalogue`` until cancelled (``run``)."""

    def __init__(
        self,
        settings: Settings,
        topics: TopicCatalogue,
        catalogue: Catalogue,
        send: Send,
        metrics: CatalogueMetrics,
        on_version: OnVersion | None = None,
    ) -> None:
        self.catalogue = catalogue
        self._settings = settings
        self._topic = topics.name(Topic.PRODUCTS)
        self._dlq = topics.dlq(Topic.PRODUCTS)
        self._send = send
        self._metrics = metrics
        self._on_version = on_version
        self._caught_up = asyncio.Event()
        # set once caught up, or once Kafka said the topic does not exist (nothing to wait for)
        self._settled = asyncio.Event()

    async def caught_up(self) -> None:
        """Return once every partition was read up to its end offset as of the reader's start
        (at once when the topic was empty then). Waits as long as the reader is not running."""
        await self._caught_up.wait()

    @property
    def is_caught_up(self) -> bool:
        return self._caught_up.is_set()

    async def wait_until_read(self, limit: float, every: float = PROGRESS_SECONDS) -> bool:
        """Wait until the reader has caught up (True), or return False once the topic is found
        not to exist (nothing to wait for: its versions arrive when it does) or ``limit``
        seconds have passed (logged: what judges with the catalogue goes on with what was
        read). Logs how far the reading got every ``every`` seconds it waits. Raises nothing
        but cancellation."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while not self._settled.is_set():
            left = deadline - loop.time()
            if left <= 0:
                log.warning(
                    "catalogue: %s not read to its end after %gs (%d products so far); the "
                    "journeys go on without the rest: a step judged now may miss a product's "
                    "newer versions",
                    self._topic, limit, len(self.catalogue),
                )  # fmt: skip
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settled.wait(), min(every, left))
            if not self._settled.is_set() and loop.time() < deadline:
                log.info(
                    "catalogue: the journeys wait until %s is read (%d products so far)",
                    self._topic, len(self.catalogue),
                )  # fmt: skip
        return self.is_caught_up

    async def run(self) -> None:
        """Assign every partition, read from the beginning, and keep reading; returns only by
        cancellation. Kafka errors of a fetch are retried by the client; the topic not existing
        yet is waited for. A failure that ends the reading (a broker dying while the reader
        starts: aiokafka then raises a ``KafkaError``, or leaks a ``CancelledError`` of its own
        tasks) starts it again from the beginning after ``TOPIC_WAIT_SECONDS``; the versions
        read twice are duplicates the catalogue drops."""
        while True:
            try:
                await self._read()
            except (KafkaError, asyncio.CancelledError) as exc:
                if isinstance(exc, asyncio.CancelledError) and _cancelled():
                    raise
                log.warning("catalogue: reading %s failed (%r); reading it again", self._topic, exc)
                await asyncio.sleep(TOPIC_WAIT_SECONDS)

    async def _read(self) -> None:
        starts, ends = await self._offsets()
        consumer = AIOKafkaConsumer(
            **self._settings.kafka_client_options(),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        # aiokafka 0.14 cancels and then awaits a group-less consumer's background task in
        # stop(); if that task never ran, the CancelledError escapes. Let it start first.
        await asyncio.sleep(0)
        try:
            partitions = sorted(ends)
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            pending = {tp: end for tp, end in ends.items() if end > starts[tp]}
            while True:
                if not pending:
                    self._reached_end()
                batch = await consumer.getmany(timeout_ms=FETCH_TIMEOUT_MS, max_records=MAX_RECORDS)
                for records in batch.values():
                    for record in records:
                        await self._take(record)
                for tp in list(pending):
                    if await consumer.position(tp) >= pending[tp]:
                        del pending[tp]
        finally:
            with contextlib.suppress(KafkaError):
                await consumer.stop()

    def _reached_end(self) -> None:
        if not self._caught_up.is_set():
            self._caught_up.set()
            self._settled.set()
            self._metrics.caught_up.set(1)
            log.info("catalogue: read %s to its end: %d products", self._topic, len(self.catalogue))

    async def _offsets(self) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
        """Beginning and end offsets of every partition of the topic, once it exists."""
        warned = False
        while True:
            try:
                # Named in a metadata request, a missing topic may be auto-created with the
                # broker's defaults (not compacted): look for it in the list first.
                exists = self._topic in await _topic_names(self._settings)
                starts, ends = (
                    await topic_offsets(self._settings, [self._topic]) if exists else ({}, {})
                )
            except KafkaError as exc:
                starts, ends, why = {}, {}, f"Kafka did not answer ({exc!r})"
            else:
                why = "it does not exist yet"
                if not exists:  # nothing to wait for: its versions arrive once it exists
                    self._settled.set()
            if ends:
                return starts, ends
            if not warned:
                log.warning("catalogue: %s not read: %s; trying again", self._topic, why)
                warned = True
            await asyncio.sleep(TOPIC_WAIT_SECONDS)

    async def _take(self, record: ConsumerRecord[bytes, bytes]) -> None:
        """Parse, keep and announce one record; a bad one is dead-lettered. Raises nothing."""
        try:
            version = parse_product(record.key, record.value, self._settings.max_record_bytes)
        except InvalidRecord as exc:
            await self._dead_letter(record, exc.reason)
            return
        if version is None:
            self._metrics.records.labels("tombstone").inc()
            return
        if not self.catalogue.add(version):
            self._metrics.records.labels("duplicate").inc()
            return
        self._metrics.records.labels("new").inc()
        self._metrics.products.set(len(self.catalogue))
        if self._on_version is None:
            return
        try:
            pending = self._on_version(version)
            if pending is not None:
                await pending
        except Exception:  # the handler's bug must not stop the catalogue: logged, counted
            self._metrics.callback_errors.inc()
            log.exception("catalogue: the handler of %s failed", version.product_id)

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], reason: str) -> None:
        self._metrics.invalid.inc()
        source = f"{record.topic}:{record.partition}:{record.offset}"
        letter = dead_letter(record.value, f"catalogue: {reason}", source, self._topic)
        try:
            await self._send(self._dlq, record.key, letter.value, letter.headers)
        except KafkaError:  # the record stays in products; a restart reads it again
            log.exception("catalogue: %s not dead-lettered: %s", source, reason)


def _cancelled() -> bool:
    """Whether the running task itself is being cancelled (not merely handed a
    ``CancelledError`` that a client library's own task leaked)."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


async def _topic_names(settings: Settings) -> set[str]:
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


def install_catalogue(
    app: Any,
    settings: Settings,
    topics: TopicCatalogue,
    registry: CollectorRegistry,
    send: Send,
    catalogue: Catalogue,
    on_version: OnVersion | None = None,
) -> CatalogueReader:
    """A reader of ``products`` into ``catalogue``, run as a task of the Faust ``app``.

    Faust starts its tasks once the tables are recovered and cancels them when it stops; the
    reader's consumer is closed then. Await ``reader.caught_up()`` before judging with the
    catalogue.
    """
    reader = CatalogueReader(
        settings, topics, catalogue, send, CatalogueMetrics.create(registry), on_version
    )
    app.task(reader.run)
    return reader
