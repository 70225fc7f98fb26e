"""The detector's view of erasures: every erased customer, read from ``erasures`` by every worker.

The detector's sessions are keyed by session, so the sessions of one customer may be on any
partition: every worker reads every partition of ``erasures`` (an assigned consumer, no group,
from the beginning, like the catalogue reader) into one ``ErasedCustomers``. The detector's
shell asks it two things: whether an event's customer is erased (the event is then dropped, so
a replay or a re-sent event never brings them back), and, each time an erasure arrives, which
of its sessions to drop (``sweep``). An erasure that arrives while the worker runs (not one
read while catching up at start) is confirmed per partition on ``erasures.done`` once the
partition's sessions are dropped and their deletion written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from streams.contract.erasure import Erasure, parse_erasure
from streams.contract.errors import InvalidRecord
from streams.contract.privacy import Pseudonyms, cached_customer
from streams.contract.topics import Topic, TopicCatalogue
from streams.runtime.kafka import topic_offsets
from streams.runtime.metrics import ErasureMetrics
from streams.runtime.settings import Settings

log = logging.getLogger(__name__)

FETCH_TIMEOUT_MS: Final = 1000
TOPIC_WAIT_SECONDS: Final = 1.0


@dataclass(slots=True)
class ErasedCustomers:
    """Every erasure the reader has read, by subject, and a cache of pseudonyms by customer id.

    ``generation`` grows with each erasure not known before (or re-sent), so a partition knows
    whether it must sweep again. ``confirm`` holds, by generation, the erasures that arrived
    while the worker ran: each partition confirms those newer than its last sweep.
    ``pseudonym`` is ``pseudonyms.customer`` behind a bounded cache: a pure function of the id,
    so a new erasure leaves it as it is (a customer is hashed once, not after every erasure).
    """

    pseudonyms: Pseudonyms
    metrics: ErasureMetrics | None = None
    subjects: dict[str, Erasure] = field(default_factory=dict)
    generation: int = 0
    confirm: list[tuple[int, Erasure]] = field(default_factory=list)
    pseudonym: Callable[[str], str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.pseudonym = cached_customer(self.pseudonyms)

    def add(self, erasure: Erasure, live: bool) -> None:
        """Know ``erasure``; ``live``: it arrived while the worker ran (its parts confirm)."""
        known = self.subjects.get(erasure.subject)
        self.subjects[erasure.subject] = erasure
        if known is None or (erasure.is_open and live):
            self.generation += 1
            if erasure.is_open and live:
                self.confirm.append((self.generation, erasure))
        if self.metrics is not None:
            self.metrics.known.set(len(self.subjects))

    def is_erased(self, customer_id: str) -> bool:
        """Whether ``customer_id``'s pseudonym is erased (no hashing while nothing is)."""
        subjects = self.subjects
        return bool(subjects) and self.pseudonym(customer_id) in subjects

    def to_confirm(self, after: int) -> list[Erasure]:
        """The live erasures newer than generation ``after``."""
        return [erasure for generation, erasure in self.confirm if generation > after]


class ErasureReader:
    """Reads every partition of ``erasures`` into ``erased`` until cancelled (``run``)."""

    def __init__(
        self,
        settings: Settings,
        topics: TopicCatalogue,
        erased: ErasedCustomers,
        metrics: ErasureMetrics,
    ) -> None:
        self.erased = erased
        self._settings = settings
        self._topic = topics.name(Topic.ERASURES)
        self._metrics = metrics
        self._caught_up = asyncio.Event()

    @property
    def is_caught_up(self) -> bool:
        return self._caught_up.is_set()

    async def caught_up(self) -> None:
        await self._caught_up.wait()

    async def run(self) -> None:
        """Assign every partition, read from the beginning, and keep reading; returns only by
        cancellation. A record read at or past the end offsets seen at the start is live."""
        starts, ends = await self._offsets()
        consumer = AIOKafkaConsumer(
            **self._settings.kafka_client_options(),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        await asyncio.sleep(0)  # let the group-less consumer's task start (see catalogue.py)
        try:
            partitions = sorted(ends)
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            pending = {tp: end for tp, end in ends.items() if end > starts[tp]}
            while True:
                if not pending and not self._caught_up.is_set():
                    self._caught_up.set()
                    log.info("erasures: read to the end: %d erased", len(self.erased.subjects))
                batch = await consumer.getmany(timeout_ms=FETCH_TIMEOUT_MS)
                for tp, records in batch.items():
                    for record in records:
                        self._take(record.key, record.value, live=record.offset >= ends[tp])
                for tp in list(pending):
                    if await consumer.position(tp) >= pending[tp]:
                        del pending[tp]
        finally:
            with contextlib.suppress(KafkaError):
                await consumer.stop()

    def _take(self, key: bytes | None, value: bytes | None, live: bool) -> None:
        try:
            erasure = parse_erasure(key, value)
        except InvalidRecord as exc:  # the journeys dead-letter it; here it is only skipped
            self._metrics.invalid.labels("detector").inc()
            log.warning("erasures: a record that is not an erasure skipped: %s", exc.reason)
            return
        self.erased.add(erasure, live)

    async def _offsets(self) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
        """Beginning and end offsets of every partition, once the topic exists."""
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
                why = "it does not exist yet (cartpulse topics create)"
            if ends:
                return starts, ends
            if not warned:
                log.warning("erasures: %s not read: %s; trying again", self._topic, why)
                warned = True
            await asyncio.sleep(TOPIC_WAIT_SECONDS)


async def _topic_names(settings: Settings) -> set[str]:
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


def install_forgetting(
    app: Any, settings: Settings, topics: TopicCatalogue, metrics: ErasureMetrics
) -> ErasedCustomers:
    """The worker's ``ErasedCustomers``, filled by an ``ErasureReader`` run as a Faust task."""
    erased = ErasedCustomers(Pseudonyms.of(settings), metrics)
    reader = ErasureReader(settings, topics, erased, metrics)
    app.task(reader.run)
    return erased
