"""The detector's shell: decode, call the core, emit, persist, acknowledge, count.

One ``PartitionWorker`` per assigned input partition holds a ``Detector`` (the native core) over
an in-memory map of sessions that is loaded from the sessions table when the partition is first
seen and written back, changed sessions only, every ``state_flush_interval``. A message is
acknowledged (so its offset may be committed) only after the abandonments it caused are on
their topic and the state it changed is in the table's changelog. A crash therefore replays
unacknowledged messages against the last persisted state: repeated events are dropped by their
event_id, and an abandonment may be emitted again with the same ``abandonment_id``.

A rebalance revokes every partition (Faust's eager protocol) and mostly gives a worker its own
back. A partition whose sessions are all in the table when it is revoked (``clean``) keeps its
``Detector`` aside, and takes it up again when the very next generation assigns it back here:
no other worker can have owned it in between, so the table holds what the detector holds, and
the load (about half a second per 125k sessions) is saved. Any other case loads from the table;
the partitions one batch must load (a failover's) load side by side, in threads.
Records of a partition revoked since they were fetched are not taken: they come again, from the
committed offset, to whichever worker owns the partition next.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic

import orjson

from streams.agents.batching import acting_for
from streams.agents.forgetting import ErasedCustomers
from streams.agents.ports import Clock, Delivery, Headers, InputMessage, M, Producer, StateTable, T
from streams.contract.erasure import Done, Erasure
from streams.contract.errors import InvalidRecord, UnknownEventType
from streams.contract.event_parse import read_record
from streams.contract.native import Record
from streams.contract.topics import Topic, TopicCatalogue
from streams.core.detection import Closed, Counters, Detector, DetectorConfig
from streams.core.watermarks import InputMerge, read_tick
from streams.runtime.kafka import dead_letter
from streams.runtime.metrics import DetectorMetrics, ErasureMetrics

log = logging.getLogger(__name__)

WATERMARK_KEY = b"\x00watermark"


def state_key(partition: int, key: bytes) -> bytes:
    """Table keys carry their input partition, so a partition's sessions can be found again."""
    return b"%d:%s" % (partition, key)


@dataclass(slots=True)
class PartitionWorker(Generic[M, T]):
    partition: int
    detector: Detector
    last_flush: float
    # the inputs' progress by topic (the watermark merge), and their topic-partitions
    inputs: InputMerge[str]
    input_tps: dict[str, T]
    unacked: list[M] = field(default_factory=list)
    outbox: list[tuple[str, bytes | None, bytes, Headers]] = field(default_factory=list)
    in_flight: list[Delivery] = field(default_factory=list)
    seen_counters: Counters = field(default_factory=Counters)
    swept: int = 0  # the generation of ErasedCustomers this partition's sessions were swept at
    confirm: list[tuple[Erasure, int]] = field(default_factory=list)  # (erasure, sessions)
    clean: bool = True  # the table holds every change the detector made (nothing taken since)
    live_due: int | None = None  # live: the wall clock (ms) of a tick not applied yet, held
    # while an input has records to deliver


class DetectorShell(Generic[M, T]):
    """Turns batches of input messages into abandonments; see the module docstring.

    Ports (streams/agents/ports.py): ``table`` the sessions table, ``send`` the producer,
    ``ack``/``highwater``/``position`` the consumer's (``Positions``), ``make_tp`` names an input
    topic-partition as the consumer does, ``create_event`` makes a message Faust's current
    event for the table's reads at a partition's load (a flush names its partition),
    ``wall_clock`` the clock, ``partition_items`` the table's entries of one partition (a
    superset will do: keys are filtered by their partition; the whole table when not given)."""

    def __init__(
        self,
        *,
        config: DetectorConfig,
        topics: TopicCatalogue,
        clock_mode: str,
        table: StateTable,
        send: Producer,
        ack: Callable[[M], object],
        highwater: Callable[[T], int | None],
        position: Callable[[T], Awaitable[int | None]],
        make_tp: Callable[[str, int], T],
        create_event: Callable[[M], object],
        metrics: DetectorMetrics,
        flush_interval: float,
        max_record_bytes: int,
        wall_clock: Clock = time.time,
        erased: ErasedCustomers | None = None,
        erasure_metrics: ErasureMetrics | None = None,
        partition_items: Callable[[int], Iterable[tuple[bytes, bytes | None]]] | None = None,
    ) -> None:
        self.config = config
        self.partition_items = partition_items
        self.erased = erased
        self.erasure_metrics = erasure_metrics
        self.topics = topics
        self.live = clock_mode == "live"
        self.table = table
        self.send = send
        self.ack = ack
        self.highwater = highwater
        self.position = position
        self.make_tp = make_tp
        self.create_event = create_event
        self.metrics = metrics
        self.flush_interval = flush_interval
        self.max_record_bytes = max_record_bytes
        self.wall_clock = wall_clock
        self.partitions: dict[int, PartitionWorker[M, T]] = {}
        self._busy = asyncio.Lock()  # one batch, idle flush or drain at a time
        self._assigned: set[int] | None = None  # the input partitions owned (None: not told)
        self._generation: int | None = None  # the group generation they were assigned in
        self._kept: dict[int, Detector] = {}  # clean detectors of the partitions just revoked
        self._taken: dict[tuple[str, str], int] = {}
        self._ticks = topics.name(Topic.TICKS)
        self._repartition = topics.name(Topic.REPARTITION)
        self._abandonments = topics.name(Topic.ABANDONMENTS)
        self._orders = topics.name(Topic.ORDERS)
        self._erasures_done = topics.name(Topic.ERASURES_DONE)
        self._dlq = {
            topics.name(Topic.CLICKSTREAM): topics.dlq(Topic.CLICKSTREAM),
            topics.name(Topic.CART): topics.dlq(Topic.CART),
            self._repartition: topics.dlq(Topic.CLICKSTREAM),
        }

    # -- the batch path ----------------------------------------------------------------

    async def on_batch(self, messages: Sequence[M]) -> None:
        """Handle one fetched batch (any partitions, in fetch order); never raises for data.

        A message is acknowledged (``ack``) only at a flush, after its outputs are delivered
        and the state it changed is written to the table."""
        async with self._busy:
            await self._on_batch(messages)

    async def flush_idle(self) -> None:
        """Flush the partitions that took records and got no batch for a flush interval since
        (a timer calls this). Their messages are acknowledged without waiting for more
        traffic, and a partition revoked now is clean: kept if the group gives it back.
        Before, a partition waited for its next batch, and with no leader to send ticks (it
        was the worker that died) it stayed unflushed until the rebalance, then loaded its
        sessions again (docs/operations.md, "Failover")."""
        await self._flush_all(idle_only=True)

    async def _flush_all(self, *, idle_only: bool) -> None:
        """Send what is queued and flush every partition (only the idle, unclean ones)."""
        async with self._busy:
            for worker in list(self.partitions.values()):
                idle = self.wall_clock() - worker.last_flush >= self.flush_interval
                if idle_only and (worker.clean or not idle):
                    continue
                await self._send_outbox(worker)
                await self._flush(worker)

    async def _on_batch(self, messages: Sequence[M]) -> None:
        by_partition: dict[int, list[M]] = {}
        for message in messages:
            by_partition.setdefault(message.partition, []).append(message)
        restored = await self._restore_all(by_partition)
        for partition, batch in by_partition.items():
            if self._assigned is not None and partition not in self._assigned:
                continue  # revoked since it was fetched (a revocation may come at any await)
            worker = self.partitions.get(partition)
            if worker is None:
                worker = self._load(partition, batch[0], restored.get(partition))
                self.partitions[partition] = worker
            was_clean, swept = worker.clean, worker.swept
            worker.clean = False
            self._sweep(worker)
            for message in batch:
                self._handle(worker, message)
            await self._advance(worker)
            worker.unacked.extend(batch)
            emitted = bool(worker.outbox)
            await self._send_outbox(worker)
            self._observe(worker)
            if was_clean and not emitted and worker.swept == swept and self._ticks_only(batch):
                # Ticks that closed nothing: what they moved (the watermark, purges of
                # expired sessions) the table may lack, but a kept detector is the table's
                # state with these ticks applied again, which is what a reload would do.
                worker.clean = True
            if self.wall_clock() - worker.last_flush >= self.flush_interval:
                await self._flush(worker)

    def _ticks_only(self, batch: Sequence[M]) -> bool:
        ticks = self._ticks
        return all(message.topic == ticks for message in batch)

    async def _send_outbox(self, worker: PartitionWorker[M, T]) -> None:
        outbox, sent = worker.outbox, 0
        try:
            for record in outbox:
                worker.in_flight.append(await self.send(*record))
                sent += 1
        finally:  # cut off (shutdown): what was not handed to the producer stays queued
            del outbox[:sent]

    def _handle(self, worker: PartitionWorker[M, T], message: M) -> None:
        try:
            self._process(worker, message)
        except Exception as exc:  # nothing escapes the loop: a bug's victim goes to the DLQ
            topic = message.topic
            log.exception("failed on %s:%s:%s", topic, message.partition, message.offset)
            self._dead_letter(worker, message, f"internal error: {exc!r}")

    def _process(self, worker: PartitionWorker[M, T], message: M) -> None:
        topic = message.topic
        metrics = self.metrics
        if topic == self._ticks:
            self._tick(worker, message.value)
            return
        worker.inputs.delivered(topic, message.offset)
        value = message.value or b""
        event = self._read(worker, message, value)
        if event is None:
            return
        erased = self.erased
        # asked again on the repartition topic: an erasure read between the two readings of a
        # re-keyed event must still stop it (the pseudonym is cached, so it costs a lookup)
        if erased is not None:
            customer = event.customer_id
            if customer and erased.is_erased(customer):
                # an erased customer's event (a replay, a re-sent event): never taken again
                if self.erasure_metrics is not None:
                    self.erasure_metrics.ignored.labels("detector").inc()
                return
        session_key = event.session_id.encode()
        if message.key != session_key and topic != self._repartition:
            metrics.repartitioned.inc()
            self._emit(worker, self._repartition, session_key, value, None)
            return
        taken = (topic, event.type)
        self._taken[taken] = self._taken.get(taken, 0) + 1  # to the counter once per batch
        worker.inputs.took(topic, event.occurred_at)
        fresh, closed = worker.detector.take(event)
        if event.type == "order_completed" and fresh:
            key = (event.customer_id or event.session_id).encode()
            self._emit(worker, self._orders, key, value, None)
            metrics.orders_forwarded.inc()
        if closed:
            self._emit_abandonments(worker, closed)

    def _read(
        self, worker: PartitionWorker[M, T], message: InputMessage, value: bytes
    ) -> Record | None:
        """``read_record``, counting unknown types and sending invalid records to the DLQ."""
        try:
            return read_record(value, self.max_record_bytes)
        except UnknownEventType:
            self.metrics.unknown_types.labels(message.topic).inc()
        except InvalidRecord as exc:
            self._dead_letter(worker, message, exc.reason)
        return None

    def _dead_letter(
        self, worker: PartitionWorker[M, T], message: InputMessage, reason: str
    ) -> None:
        """Count the message as invalid and send it, as it came, to its topic's DLQ."""
        topic = message.topic
        self.metrics.invalid.labels(topic).inc()
        dlq = self._dlq.get(topic, self._dlq[self._repartition])
        letter = dead_letter(message.value, reason, _where(message), topic)
        self._emit(worker, dlq, message.key, letter.value or b"", letter.headers)

    async def _advance(self, worker: PartitionWorker[M, T]) -> None:
        """Move the watermark to the slowest input that still has records to deliver (the
        merge is pure: streams/core/watermarks.py); asks the consumer's position only of the
        inputs whose idleness decides it."""
        inputs, tps = worker.inputs, worker.input_tps
        highwaters = {topic: self.highwater(tp) for topic, tp in tps.items()}
        for topic in inputs.to_ask(highwaters):
            inputs.position(topic, highwaters[topic], await self.position(tps[topic]))
        watermark = inputs.advance(highwaters)
        if watermark is not None:
            closed = worker.detector.advance(watermark)
            if closed:
                self._emit_abandonments(worker, closed)
        if worker.live_due is not None:
            await self._advance_live(worker, highwaters, worker.live_due)

    async def _advance_live(
        self, worker: PartitionWorker[M, T], highwaters: dict[str, int | None], due: int
    ) -> None:
        """Live: move the watermark to the wall clock less the lateness, once no input holds
        records still to deliver (docs/semantics.md, "Clock modes"); until then the tick stays
        due, and the event-time watermark alone closes sessions."""
        inputs, tps = worker.inputs, worker.input_tps
        for topic in inputs.to_ask_live(highwaters):  # past records it never delivers, if any
            inputs.position(topic, highwaters[topic], await self.position(tps[topic]))
        if inputs.holding(highwaters):
            return
        live = max(due, int(self.wall_clock() * 1000)) - self.config.lateness_ms
        worker.live_due = None
        self._emit_abandonments(worker, worker.detector.advance(live))

    def _tick(self, worker: PartitionWorker[M, T], raw: bytes | None) -> None:
        """An explicit event-time watermark applies at once; a live tick's wall clock at the end
        of the batch, after the records delivered with it (``_advance_live``)."""
        watermark, wall_ms = read_tick(raw)
        if watermark is not None:  # an explicit event-time watermark (replay's end)
            self._emit_abandonments(worker, worker.detector.advance(watermark))
        if self.live and wall_ms is not None:
            worker.live_due = max(wall_ms, worker.live_due or wall_ms)

    def _emit_abandonments(self, worker: PartitionWorker[M, T], closed: list[Closed]) -> None:
        now = self.wall_clock()
        for abandonment in closed:
            self.metrics.abandonments.labels(abandonment.kind).inc()
            if self.live:
                self.metrics.detection_delay.observe(max(0.0, now - abandonment.detected_at / 1000))
            self._emit(worker, self._abandonments, abandonment.key.encode(), abandonment.json, None)

    def _emit(
        self,
        worker: PartitionWorker[M, T],
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: Headers,
    ) -> None:
        worker.outbox.append((topic, key, value, headers))

    # -- persistence -------------------------------------------------------------------

    async def _restore_all(self, by_partition: dict[int, list[M]]) -> dict[int, Detector]:
        """The detectors of the batch's partitions that must be loaded from the table, each
        restored in a thread of its own: the native restore runs without the interpreter's
        lock, so on a failover the killed worker's partitions load side by side. Nothing is
        returned when a rebalance came meanwhile (each is then loaded as the new assignment
        decides)."""
        assigned = self._assigned
        needed = [
            (partition, batch[0])
            for partition, batch in by_partition.items()
            if partition not in self.partitions
            and partition not in self._kept
            and (assigned is None or partition in assigned)
        ]
        if len(needed) < 2:
            return {}  # one load gains nothing from a thread
        generation = self._generation
        detectors = await asyncio.gather(
            *(asyncio.to_thread(self._restore, p, self.create_event(m)) for p, m in needed)
        )
        if self._generation != generation:
            return {}
        return {p: detector for (p, _), detector in zip(needed, detectors, strict=True)}

    def _load(
        self, partition: int, message: M, restored: Detector | None = None
    ) -> PartitionWorker[M, T]:
        """A partition's worker: with the detector kept through the rebalance that gave it back,
        the one ``restored`` for it, or one rebuilt from the table now (after any other
        assignment, or a restart)."""
        detector = self._kept.pop(partition, None)
        if detector is None:
            if restored is None:  # (not ``or``: a detector without sessions is falsy)
                restored = self._restore(partition, self.create_event(message))
            detector = restored
        else:
            log.info(
                "partition %d: %d sessions kept through the rebalance", partition, len(detector)
            )
        inputs = (Topic.CLICKSTREAM, Topic.CART, Topic.REPARTITION)
        names = [self.topics.name(t) for t in inputs]
        merge = InputMerge(names, self.config.lateness_ms)
        input_tps = {name: self.make_tp(name, partition) for name in names}
        return PartitionWorker(partition, detector, self.wall_clock(), merge, input_tps)

    def _restore(self, partition: int, event: object) -> Detector:
        """A partition's detector rebuilt from its table entries (``event``: the partition's
        first message as Faust's event, current while the table is read). Safe in a thread."""
        started = time.perf_counter()
        prefix = b"%d:" % partition
        keys: list[bytes] = []
        values: list[bytes] = []
        watermark = max_event = None
        read = 0
        with acting_for(event):
            read_partition = self.partition_items
            entries = self.table.items() if read_partition is None else read_partition(partition)
            for key, value in entries:
                read += 1
                if not key.startswith(prefix) or value is None:
                    continue
                if key[len(prefix) :] == WATERMARK_KEY:
                    marks = orjson.loads(value)
                    watermark, max_event = marks.get("wm"), marks.get("max")
                else:
                    keys.append(key)
                    values.append(value)
        detector = Detector(self.config, (), watermark, max_event, auto_watermark=False)
        for index, reason in detector.restore_many(values):
            log.warning("dropping unreadable session state %r: %s", keys[index], reason)
        log.info(
            "partition %d: %d sessions restored from %d table entries read in %.3f s, "
            "watermark %s",
            partition, len(detector), read, time.perf_counter() - started, watermark,
        )  # fmt: skip
        return detector

    async def _flush(self, worker: PartitionWorker[M, T]) -> None:
        """Make the partition's outputs and state durable, then acknowledge its messages."""
        started = time.perf_counter()
        if worker.in_flight:
            # Outputs first (abandonments, orders, DLQ records, and the previous flush's
            # table writes): state must not run ahead.
            pending, worker.in_flight = worker.in_flight, []
            await asyncio.gather(*pending)
        detector = worker.detector
        partition = worker.partition
        changed, deleted = detector.take_changes()
        changes: list[tuple[bytes, bytes | None]] = [
            (state_key(partition, sid.encode()), state) for sid, state in changed
        ]
        changes.extend((state_key(partition, sid.encode()), None) for sid in deleted)
        marks = {"wm": detector.watermark, "max": detector.max_event_ms}
        changes.append((state_key(partition, WATERMARK_KEY), orjson.dumps(marks)))
        # awaited by the next flush, before its writes: the table's backpressure
        written = await self.table.write(partition, changes)
        if written is not None:
            worker.in_flight.append(written)
        worker.clean = True
        self.metrics.state_writes.inc(len(changed) + len(deleted))
        await self._confirm(worker)
        for pending_message in worker.unacked:
            self.ack(pending_message)
        worker.unacked.clear()
        worker.last_flush = self.wall_clock()
        self.metrics.batch_seconds.observe(time.perf_counter() - started)

    # -- erasures ------------------------------------------------------------------------

    def _sweep(self, worker: PartitionWorker[M, T]) -> None:
        """Drop the partition's sessions of erased customers, once per erasure that arrived
        since its last sweep (a restored partition sweeps every erasure known); their saved
        state is deleted at the next flush, which then confirms the live erasures."""
        erased = self.erased
        if erased is None or worker.swept >= erased.generation:
            return
        subjects, pseudonym = erased.subjects, erased.pseudonym
        sessions: dict[str, set[str]] = {}
        for customer, session_id in worker.detector.customer_sessions():
            subject = pseudonym(customer)
            if subject in subjects:
                sessions.setdefault(subject, set()).add(session_id)
        dropped = worker.detector.forget([s for ids in sessions.values() for s in ids])
        if self.erasure_metrics is not None and dropped:
            self.erasure_metrics.dropped.labels("detector").inc(dropped)
        for erasure in erased.to_confirm(worker.swept):
            worker.confirm.append((erasure, len(sessions.get(erasure.subject, ()))))
        worker.swept = erased.generation

    async def _confirm(self, worker: PartitionWorker[M, T]) -> None:
        """Confirm on ``erasures.done`` the erasures whose sessions this flush deleted."""
        if not worker.confirm:
            return
        at_ms = int(self.wall_clock() * 1000)
        for erasure, sessions in worker.confirm:
            done = Done(
                erasure.subject, erasure.request_id, "detector", at_ms, worker.partition,
                {"sessions": sessions},
            )  # fmt: skip
            worker.in_flight.append(
                await self.send(self._erasures_done, done.key, done.to_json(), None)
            )
            if self.erasure_metrics is not None:
                self.erasure_metrics.applied.labels("detector").inc()
        worker.confirm.clear()

    async def drain(self) -> None:
        """Persist and acknowledge every partition's taken messages (graceful shutdown).

        A batch cut off mid-way may have changed the state and queued outputs without its
        messages being listed for acknowledgement: its outputs go out and its state is
        persisted too; its messages come again after a restart and are dropped as repeats.
        """
        await self._flush_all(idle_only=False)

    def revoke(self, partitions: set[int]) -> None:
        """Forget revoked partitions: their unacknowledged messages go to the new owner. The
        detector of a clean one is kept aside, for ``assign`` to decide on."""
        if self._assigned is not None:
            self._assigned -= partitions
        for partition in partitions:
            worker = self.partitions.pop(partition, None)
            if worker is not None and worker.clean:
                self._kept[partition] = worker.detector

    def assign(self, partitions: set[int], generation: int) -> None:
        """The input partitions the group's ``generation`` gives this worker. A kept detector
        stays only if its partition is among them and no generation came between: a worker
        that missed one (dropped from the group, then back) may have lost the partition to
        another worker meanwhile, which changed the table."""
        follows = self._generation is not None and generation == self._generation + 1
        self._kept = {p: d for p, d in self._kept.items() if follows and p in partitions}
        self._assigned = set(partitions)
        self._generation = generation

    # -- metrics -----------------------------------------------------------------------

    def _observe(self, worker: PartitionWorker[M, T]) -> None:
        counters, seen = worker.detector.counters, worker.seen_counters
        metrics = self.metrics
        for (topic, etype), count in self._taken.items():
            metrics.events_in.labels(topic, etype).inc(count)
        self._taken.clear()
        metrics.duplicates.inc(counters.duplicates - seen.duplicates)
        metrics.late.inc(counters.late - seen.late)
        worker.seen_counters = dataclasses.replace(counters)
        watermark = worker.detector.watermark
        if watermark is not None:
            label = str(worker.partition)
            metrics.watermark.labels(label).set(watermark / 1000)
            metrics.watermark_lag.labels(label).set(self.wall_clock() - watermark / 1000)

    def gauge_sessions(self) -> None:
        detectors = [w.detector for w in self.partitions.values()]
        self.metrics.sessions.set(sum(len(d) for d in detectors))
        self.metrics.open_sessions.set(sum(d.open_sessions() for d in detectors))


def _where(message: InputMessage) -> str:
    return f"{message.topic}:{message.partition}:{message.offset}"
