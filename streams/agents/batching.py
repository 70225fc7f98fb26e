"""Batch delivery for Faust: the detector's inputs skip Faust's per-message machinery.

Why: a stock Faust consumer hands every message to the Conductor inside its own
``wait_first`` (two tasks and an ``asyncio.wait`` per message) and then through a queue, an
Event and an ack; on two cores that path alone tops out near 13k messages/s (measured; see
docs/BENCHMARKS.md), below the detector's 20k target. ``BatchingConsumer`` keeps everything
else of Faust — group membership, the co-partitioning assignor, table recovery from changelogs,
offset commits — and, for topics registered with ``deliver_batches``, hands each fetched batch
to one coroutine. The handler owns acknowledgement: it calls ``Consumer.ack`` for a message
only when its effects are durable, and Faust commits acked offsets after flushing the producer.

Everything here leans on faust-streaming 0.15.3 internals (pinned exactly in pyproject.toml).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import contextmanager
from typing import Any, Protocol

import faust
from faust.streams import _current_event
from faust.streams import current_event as faust_current_event
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, AppT, EventT, Message

from streams.runtime.kafka import PRODUCER_GUARANTEES

# Takes one fetch's messages of its topics (DetectorShell.on_batch) and acknowledges them itself.
BatchHandler = Callable[[Sequence[Message]], Awaitable[None]]
YIELD_EVERY = 500  # messages between yields to the loop while dispatching one fetch
# A fetch returns once this much arrived, or after the wait: at 5,000 events/s some 40 ms of
# traffic. With Kafka's default (1 byte) a live worker sent a fetch for every few records, each
# naming every partition it owns (docs/architecture.md, "Live: fetches").
FETCH_MIN_BYTES = 64 * 1024
FETCH_MAX_WAIT_MS = 100  # the most a fetch adds to a live detection (Faust's is 1.5 s)
IDLE_POLL_S = 0.05  # how often a consumer with no active partition looks again (Faust: 1 s)
SETTLE_POLL_S = 0.001  # how often settle_producer looks again while the buffer does not shrink


class GuardedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, whose fetch gives back what it took once the flow stopped.

    A fetch runs in the consumer's thread and waits there up to a second for records, over the
    live set of active partitions. A rebalance stops the flow and its caller stops waiting, but
    the fetch goes on: when the rebalance ends within that second it takes the records of the
    partitions just resumed and sought, from the committed offset on, and hands them to no one.
    Their partitions then stay silent until a later record shows the hole (the failover
    benchmark saw 4 of 8 partitions never served, docs/operations.md, "Failover"). Here a fetch
    during which the flow stopped seeks each partition it took records from back to the first
    of them, and returns nothing: they are fetched again, for whoever asks next."""

    consumer: BatchingConsumer

    def _create_worker_consumer(self, transport: Any) -> Any:
        """Faust's consumer, fetching in batches (``FETCH_MIN_BYTES``, ``FETCH_MAX_WAIT_MS``)."""
        consumer = super()._create_worker_consumer(transport)
        # Faust passes neither: the fetcher reads them when the consumer starts
        consumer._fetch_min_bytes = FETCH_MIN_BYTES
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer

    async def _fetch_records(
        self,
        consumer: Any,
        active_partitions: set[TP],
        timeout: float | None = None,  # noqa: ASYNC109 - Faust's signature
        max_records: int | None = None,
    ) -> Any:
        stops = self.consumer.flow_stops
        records = await super()._fetch_records(consumer, active_partitions, timeout, max_records)
        if not records or self.consumer.flow_stops == stops:
            return records
        assigned = consumer.assignment()
        for tp, batch in records.items():
            if batch and tp in assigned:
                consumer.seek(tp, batch[0].offset)
        return {}


class BatchingConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer, with one ``wait_first`` per fetch instead of per message."""

    batch_handlers: dict[str, BatchHandler]
    flow_stops = 0  # how many times the flow was stopped (a rebalance, the shutdown)
    _rewound: dict[TP, int] | None = None  # per partition, where ``rewind`` last went back to
    _sought: set[TP] | None = (
        None  # partitions sought by ``seek_wait`` that delivered nothing since
    )

    def _new_consumer_thread(self) -> GuardedConsumerThread:
        return GuardedConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def stop_flow(self) -> None:
        self.flow_stops += 1
        super().stop_flow()

    async def _wait_next_records(
        self,
        timeout: float,  # noqa: ASYNC109 - Faust's signature
    ) -> tuple[Any, set[TP] | None]:
        """Faust's, but with no partition active (a rebalance: the tables recover first) it
        looks again after ``IDLE_POLL_S`` instead of Faust's whole second. Resumed meanwhile,
        the partitions waited for the rest of that second: after a failover the survivor's
        first fetch came 0.2 to 0.9 s after recovery was done (docs/operations.md, "Failover")."""
        # Faust's cached active set (None: not computed yet, Faust computes it): not
        # ``_get_active_partitions``, which checks every partition's type on each fetch
        active = self._active_partitions
        if self.flow_active and active is not None and not active and not self.app.client_only:
            self.not_waiting_next_records.set()
            await self.sleep(IDLE_POLL_S)
            return {}, set()
        return await super()._wait_next_records(timeout)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Every assigned input partition back to its committed offset, and one the group never
        committed (or committed at 0) to its first offset, as ``auto_offset_reset=earliest``
        promises; returns where each went, which Faust takes as the offset to read next.

        Faust rewinds with this after a rebalance, counting on it for the records it fetched
        and dropped meanwhile (while the tables recover, or a fetch cut off by the rebalance).
        aiokafka's ``seek_to_committed`` seeks only offsets above 0, so a partition without a
        commit kept the position the dropped records had moved it to, and they were never
        read: the new owner of a partition whose old owner was killed before its first commit
        skipped those events (tests/integration/test_worker_group.py). The first offset is
        looked up, not left to aiokafka's reset, so ``route_fetch`` knows where the partition
        starts. Each read offset is set as soon as its partition is sought (Faust sets them only
        once all are, and ``route_fetch`` skips records until then). Changelogs are left out:
        recovery seeks them itself and their read offsets stay (Faust would clear them)."""
        committed = {
            tp: offset
            for tp, offset in (await super().seek_to_committed()).items()
            if not self._is_changelog_tp(tp)
        }
        never = [tp for tp, offset in committed.items() if offset is None or offset <= 0]
        for tp, offset in committed.items():
            if tp not in never:
                # Sought again once its read offset is set: a record fetched between aiokafka's
                # seek and now was skipped, and would be lost if it was the partition's last.
                self._read_offset[tp] = offset
                await self._seek(tp, offset)
        if never:
            first = await self.earliest_offsets(*never)
            for tp in never:
                await self._seek(tp, first[tp])
                committed[tp] = self._read_offset[tp] = first[tp]
        return committed

    # -- records Faust fetched and would drop ----------------------------------------------

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:  # noqa: ASYNC109 - Faust's signature
        """Faust's ``getmany`` (faust/transport/consumer.py), which fetches and then drops the
        records of a partition not in its active set, or the rest of a fetch once the flow
        stops or the generation changes. The position has moved past them all the same, so
        unless a seek follows they are never read: a changelog's were missing from a standby
        copy and from a replay (docs/operations.md, "Failover"), an input's could be skipped
        or make the detector take the input for caught up. Here a partition whose records
        were dropped is sought back to the first of them when that is still the offset it
        delivers next (its read offset): a seek since (a rebalance's) moved or cleared the read
        offset and decides instead."""
        records, active = await self._wait_next_records(timeout)
        if records is None or self.should_stop:
            return
        generation = self.app.consumer_generation_id
        unread = {tp: batch[0].offset for tp, batch in records.items() if batch}
        if self.flow_active:
            buffered = self._buffered_partitions
            for tp, record in self.scheduler.iterate(records):
                if not self.flow_active or self.app.consumer_generation_id != generation:
                    break
                if active is None or tp in active or tp in buffered:
                    self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                    unread[tp] = record.offset + 1
                    yield tp, self._to_message(tp, record)
        else:
            await self.perform_seek()  # as Faust does; changelogs are not among its seeks
        assigned = self.assignment()
        for tp, offset in unread.items():
            dropped = offset <= records[tp][-1].offset
            if dropped and tp in assigned and self._read_offset[tp] == offset:
                await self._seek(tp, offset)
                self._read_offset[tp] = offset
                self._mark_sought(tp)

    # -- FetchRoute: what route_fetch needs of the consumer ------------------------------------

    def read_offset(self, tp: TP) -> int | None:
        """The offset ``tp`` delivers next (Faust's ``seek`` and ``perform_seek`` set it so)."""
        return self._read_offset[tp]

    def set_read_offset(self, tp: TP, offset: int) -> None:
        self._read_offset[tp] = offset
        if self._sought:
            self._sought.discard(tp)

    def just_sought(self, tp: TP) -> bool:
        return self._sought is not None and tp in self._sought

    def rebalancing(self) -> bool:
        return bool(self.app.rebalancing)

    async def seek_wait(self, partitions: Mapping[TP, int]) -> None:
        """Faust's (the changelogs' seeks, by table recovery), with each partition's read
        offset set to where it went, 0 included (Faust leaves none there): ``route_fetch``
        then fetches again a partition whose first record comes from past it."""
        await super().seek_wait(partitions)
        for tp, offset in partitions.items():
            self._read_offset[tp] = offset
            self._mark_sought(tp)

    def _mark_sought(self, tp: TP) -> None:
        if self._sought is None:
            self._sought = set()
        self._sought.add(tp)

    def acks_enabled_for(self, topic: str) -> bool:
        return bool(self.app.topics.acks_enabled_for(topic))

    async def add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        await self._add_gap(tp, offset_from, offset_to)

    async def rewind(self, tp: TP, offset: int) -> bool:
        if tp not in self.assignment():
            return True  # revoked meanwhile: its new owner reads it
        if self._rewound is None:
            self._rewound = {}
        if self._rewound.get(tp) == offset:
            return False
        self._rewound[tp] = offset
        await self._seek(tp, offset)
        self._read_offset[tp] = offset
        self._mark_sought(tp)
        return True

    async def commit_if_due(self) -> None:
        if self._commit_every is not None and self._n_acked >= self._commit_every:
            self._n_acked = 0
            await self.commit()

    async def settle_producer(self) -> None:
        await settle_producer(self.app)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - loop body
        handlers = getattr(self.app, "batch_handlers", {})
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set

        async def deliver(messages: AsyncIterator[tuple[TP, Message]]) -> None:
            await route_fetch(messages, self, handlers)

        try:
            while not (consumer_stopped() or fetcher_stopped()):
                self.diag.set_flag(CONSUMER_FETCHING)
                fetched = self.getmany(timeout=1.0)
                await self.sleep(0)
                if not self.should_stop:
                    # A rebalance suspends the flow: the rest of this fetch is dropped, unacked,
                    # and fetched again from the committed offsets afterwards.
                    await self.wait_first(deliver(fetched), self.suspend_flow.wait())
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise


class FetchRoute(Protocol):
    """What ``route_fetch`` needs of the consumer (``BatchingConsumer`` is one; tests fake it)."""

    def read_offset(self, tp: TP, /) -> int | None: ...
    def set_read_offset(self, tp: TP, offset: int, /) -> None: ...
    def just_sought(self, tp: TP, /) -> bool:
        """Whether ``tp`` was sought (a changelog, by recovery) and delivered nothing since."""
        ...

    def rebalancing(self) -> bool:
        """Whether the group is rebalancing (until Faust has sought the inputs and resumed)."""
        ...

    def acks_enabled_for(self, topic: str, /) -> bool: ...
    async def add_gap(self, tp: TP, offset_from: int, offset_to: int, /) -> None: ...
    async def rewind(self, tp: TP, offset: int, /) -> bool:
        """Fetch ``tp`` again from ``offset``; False when it went back there before and the
        records were not there (a true gap)."""
        ...

    async def commit_if_due(self) -> None: ...
    async def settle_producer(self) -> None: ...
    @property
    def callback(self) -> Callable[[Message], Awaitable[object]]: ...
    def track_message(self, message: Message, /) -> None: ...


async def route_fetch(
    messages: AsyncIterator[tuple[TP, Message]],
    consumer: FetchRoute,
    handlers: Mapping[str, BatchHandler],
) -> None:
    """Route one fetch: a message of a topic with a batch handler is tracked (so its ack
    counts) and joins that handler's batch, every other one goes through Faust's own
    ``callback``; each handler gets its batch once the fetch is read, in fetch order.

    A partition's read offset is the offset it delivers next. While the group rebalances, a
    partition without one has not been sought since it was assigned (Faust seeks every partition
    it is given before the rebalance ends: the inputs to their committed offsets, the changelogs
    where recovery starts, but it lets records through meanwhile): its records come from
    wherever the consumer stood, and are skipped; the seek decides what is read. Once the
    rebalance is over, such a record is taken (no seek is coming). A message below the read
    offset was delivered before a seek and is skipped. A message above it, in a topic with acks
    (the inputs), means records were fetched and dropped (Faust drops a fetch cut off by a
    rebalance, or the records of a partition not in its active set, and relies on a seek that
    does not always follow; and the first fetch after a seek may start past it): the partition
    is fetched again from its read offset (the rest of this fetch of it is skipped), so the
    records are read rather than committed past. A jump still there after that is a true gap (a
    compacted topic's) and is recorded as one so the commit can pass it. A changelog is
    compacted, so its jumps are looked at only on the first record after recovery sought it:
    table recovery takes every record above the last it applied and would never read the records
    skipped there. Yields to the loop every ``YIELD_EVERY`` messages. Returns once the changelog
    records the handlers' table writes queued are handed to the producer (``settle_producer``)."""
    batches: dict[BatchHandler, list[Message]] = {}
    since_yield = 0
    read_offset, set_read_offset = consumer.read_offset, consumer.set_read_offset
    rewinding: set[TP] = set()
    async for tp, message in messages:
        if tp in rewinding:
            continue
        offset = message.offset
        read = read_offset(tp)
        if read is None:
            if consumer.rebalancing():
                continue  # not sought yet since it was assigned: the seek decides
        elif offset < read:
            continue  # delivered before a seek
        handler = handlers.get(message.topic)
        if read is not None and offset > read:
            acks = consumer.acks_enabled_for(message.topic)
            if acks or consumer.just_sought(tp):
                if await consumer.rewind(tp, read):
                    rewinding.add(tp)
                    continue
                if acks:
                    await consumer.add_gap(tp, read, offset - 1)
        await consumer.commit_if_due()
        if handler is None:
            await consumer.callback(message)
        else:
            consumer.track_message(message)
            batches.setdefault(handler, []).append(message)
        set_read_offset(tp, offset + 1)
        since_yield += 1
        if since_yield >= YIELD_EVERY:
            since_yield = 0
            await asyncio.sleep(0)
    for handler, batch in batches.items():
        await handler(batch)
    if batches:
        await consumer.settle_producer()


async def settle_producer(app: AppT) -> None:
    """Wait until the changelog records of the table writes so far are handed to the producer.

    A table write is synchronous, so Faust queues its changelog record in the producer's buffer
    and a task hands the queue over one record a loop turn. A record that writes many states (a
    detector flush, a watermark that fires many journeys) leaves hundreds queued; Faust's own
    check, before its next message, then warns ``producer buffer full`` and drains the queue in
    steps of 100. Awaited after such work, the queue is drained here instead, and the next
    message waits for it: the bounded buffer is the backpressure. (Not with ``buffer.flush``:
    that waits for each record with its own ``asyncio.wait_for``, a timer and a task apiece,
    which cost the live worker a tenth of its time.) The task usually drains the whole queue
    in one turn; while it waits on the producer, this waits a millisecond at a time."""
    buffer = app.producer.buffer
    size = buffer.size
    while size:
        await asyncio.sleep(0)
        left = buffer.size
        if left >= size:
            await asyncio.sleep(SETTLE_POLL_S)
        size = left


class GuaranteedProducer(faust_aiokafka.Producer):
    """Faust's aiokafka producer with what every cartpulse producer promises
    (``PRODUCER_GUARANTEES``: acks=all and idempotent). faust-streaming 0.15.3 has no setting
    for idempotence and turns it on only inside transactions; without it a send retried after
    a broker died may be written twice."""

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), **PRODUCER_GUARANTEES}


class BatchingTransport(faust_aiokafka.Transport):
    Consumer = BatchingConsumer
    Producer = GuaranteedProducer

    def _topic_config(
        self,
        retention: int | None = None,
        compacting: bool | None = None,
        deleting: bool | None = None,
    ) -> dict[str, Any]:
        """The configs of a topic Faust creates (changelogs, the leader topic, the app's own
        topics when they are missing): the app's ``topic_configs`` under Faust's (a topic's own
        configs still go over both)."""
        config: dict[str, Any] = dict(getattr(self.app, "topic_configs", {}))
        config.update(super()._topic_config(retention, compacting, deleting))
        return config


class BatchingApp(faust.App):
    """A Faust app whose consumer can deliver whole batches of chosen topics to one handler."""

    batch_handlers: dict[str, BatchHandler]
    drain_hooks: list[Callable[[], Awaitable[None]]]
    topic_configs: Mapping[str, str]

    def __init__(
        self, *args: Any, topic_configs: Mapping[str, str] | None = None, **kwargs: Any
    ) -> None:
        """``topic_configs``: what every topic the app creates carries (``Settings.topic_configs``:
        min.insync.replicas); the other arguments are Faust's."""
        super().__init__(*args, **kwargs)
        self.batch_handlers = {}
        self.drain_hooks = []
        self.topic_configs = dict(topic_configs or {})

    async def on_stop(self) -> None:
        """Drain before Faust stops (SIGTERM): deliver nothing more, let the batch handlers
        persist and acknowledge what they took, then stop as Faust does — which flushes the
        producer and commits the acknowledged offsets. Nothing is lost, nothing repeated."""
        consumer = self._consumer
        if consumer is not None and self.drain_hooks:
            consumer.stop_flow()
            await self._fetcher.stop()  # the drain loop ends; an unfinished fetch is dropped
            self._fetcher.service_reset()
            for hook in self.drain_hooks:
                await hook()
        await super().on_stop()

    def _new_transport(self) -> Any:
        return BatchingTransport(self.conf.broker_consumer, self)

    def deliver_batches(self, topics: Sequence[str], handler: BatchHandler) -> None:
        """Route these topics' messages to ``handler`` in batches (it must ack them)."""
        for topic in topics:
            self.batch_handlers[topic] = handler


def current_event() -> EventT[Any] | None:
    """Faust's current event (what ``acting_for`` or an agent's stream set), or None: a table
    write outside one has no partition for its changelog record (Faust refuses it)."""
    return faust_current_event()


@contextmanager
def acting_for(event: Any) -> Iterator[None]:
    """Make ``event`` Faust's current event, so table writes go to its partition."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)
