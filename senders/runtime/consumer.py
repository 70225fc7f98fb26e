"""The Kafka shell of a sender: consume ``send.<channel>`` and its retry topic, run commands
concurrently, commit what is finished.

* At most ``sender_concurrency`` commands are in flight; when all are busy (waiting for rate
  slots, say) the replica stops fetching and the backlog waits in Kafka.
* Nothing escapes the loop: an invalid command goes to ``send.<channel>.dlq`` with its reason;
  an unexpected error in one command is dead-lettered with its type and counted; a Redis or
  Kafka failure retries the command (nothing went out yet).
* Offsets are committed per partition up to the first record whose outcome is not on
  ``send.results`` yet (``offsets.PartitionOffsets``), every half second and on revocation.
* ``send.<channel>.retry`` holds deferred commands with a ``cartpulse.not_before`` header; a
  partition whose next record is not due is paused and sought back to it until it is.
* On revocation or shutdown, commands that have not sent anything are cancelled (their claim
  released, their offset left uncommitted, so the next owner runs them); commands with a
  request out are awaited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from senders.adapters.errors import INFRA_ERRORS
from senders.core.clock import Clock
from senders.core.dispositions import Defer, Reject, Work
from senders.core.offsets import PartitionOffsets
from senders.core.outcomes import backoff
from senders.runtime.metrics import Metrics
from senders.runtime.service import SendService
from streams.contract.commands import parse_command
from streams.contract.errors import InvalidRecord
from streams.contract.topics import TopicSpec
from streams.runtime.kafka import ConsumedRecord, dead_letter
from streams.runtime.settings import Settings

log = logging.getLogger(__name__)

NOT_BEFORE_HEADER = "cartpulse.not_before"
ATTEMPTS_HEADER = "cartpulse.attempts"
DEFER_REASON_HEADER = "cartpulse.defer_reason"
COMMIT_INTERVAL = 0.5


class Record(ConsumedRecord, Protocol):
    """The parts of an aiokafka ``ConsumerRecord`` the senders use: a consumed record and its
    headers."""

    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


class SenderTopics(NamedTuple):
    """The topics of one channel's sender (``senders.runtime.app.sender_topics``): the command
    topic,
    its dead-letter topic, every topic the sender needs to exist, and its retry topic."""

    command: str
    dlq: str
    specs: list[TopicSpec]
    retry: str


@dataclass(slots=True)
class _Task:
    tp: TopicPartition
    offset: int
    work: Work
    task: asyncio.Task[None]
    offsets: PartitionOffsets  # of the assignment it was started in


def header(record: Record, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return value.decode(errors="replace")
    return None


class CommandConsumer(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(
        self,
        settings: Settings,
        service: SendService[Any],
        producer: Any,
        metrics: Metrics,
        clock: Clock,
        topics: SenderTopics,
    ) -> None:
        self._s = settings
        self._service = service
        self._producer = producer
        self._metrics = metrics
        self._clock = clock
        self.channel = service.channel
        self.main_topic = topics.command
        self.retry_topic = topics.retry
        self._dlq_topic = topics.dlq
        self._group = settings.sender_group_id(self.channel)
        self._owner_prefix = uuid.uuid4().hex[:12]
        self._counter = 0
        self._tasks: dict[asyncio.Task[None], _Task] = {}
        self._offsets: dict[TopicPartition, PartitionOffsets] = {}
        self._resumes: dict[TopicPartition, asyncio.TimerHandle] = {}
        self._slot_freed = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self.ready = False

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then finish or hand back what is in flight."""
        session_ms = int(self._s.sender_session_timeout.total_seconds() * 1000)
        consumer = AIOKafkaConsumer(
            **self._s.kafka_client_options(),
            group_id=self._group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=max(session_ms // 4, 100),
        )
        consumer.subscribe([self.main_topic, self.retry_topic], listener=self)
        self._consumer = consumer
        await consumer.start()
        self.ready = True
        last_commit = time.monotonic()
        try:
            while not stop.is_set():
                free = self._s.sender_concurrency - len(self._tasks)
                if free <= 0:
                    self._slot_freed.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._slot_freed.wait(), COMMIT_INTERVAL)
                else:
                    batch = await consumer.getmany(timeout_ms=200, max_records=free)
                    for tp, records in batch.items():
                        self._dispatch(consumer, tp, records)
                if time.monotonic() - last_commit >= COMMIT_INTERVAL:
                    await self._commit(consumer)
                    last_commit = time.monotonic()
        finally:
            self.ready = False
            await self._drain(set(self._offsets))
            with contextlib.suppress(KafkaError):
                await consumer.stop()
            self._consumer = None

    def _dispatch(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, records: list[Record]
    ) -> None:
        offsets = self._offsets.setdefault(tp, PartitionOffsets())
        for record in records:
            if tp.topic == self.retry_topic:
                due = _due(record)
                wait = due - self._clock.now()
                if wait > self._service.inline_wait:
                    consumer.pause(tp)
                    consumer.seek(tp, record.offset)
                    self._schedule_resume(consumer, tp, wait - self._service.inline_wait / 2)
                    return
            self._counter += 1
            work = Work(f"{self._owner_prefix}:{self._counter}", attempts=_attempts(record))
            offsets.start(record.offset)
            task = asyncio.create_task(self._process(tp, record, work))
            self._tasks[task] = _Task(tp, record.offset, work, task, offsets)
            self._metrics.in_flight.labels(self.channel).inc()
            task.add_done_callback(self._done)

    def _schedule_resume(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, delay: float
    ) -> None:
        def resume() -> None:
            self._resumes.pop(tp, None)
            if tp in consumer.assignment():
                consumer.resume(tp)

        if (old := self._resumes.pop(tp, None)) is not None:
            old.cancel()
        self._resumes[tp] = asyncio.get_running_loop().call_later(max(delay, 0.05), resume)

    def _done(self, task: asyncio.Task[None]) -> None:
        entry = self._tasks.pop(task, None)
        self._metrics.in_flight.labels(self.channel).dec()
        self._slot_freed.set()
        if entry is None or task.cancelled():
            return
        if (error := task.exception()) is not None:
            # Not even the dead-letter write worked: leave the offset uncommitted, so the
            # record comes back after a restart rather than being lost.
            log.error("record %s@%d was not handled: %r", entry.tp, entry.offset, error)
            return
        if self._offsets.get(entry.tp) is entry.offsets:  # not from an earlier assignment
            entry.offsets.finish(entry.offset)

    async def _process(self, tp: TopicPartition, record: Record, work: Work) -> None:
        source = "retry" if tp.topic == self.retry_topic else "main"
        self._metrics.commands.labels(self.channel, source).inc()
        try:
            command = parse_command(record.value)
        except InvalidRecord as exc:
            await self._dead_letter(record, exc.reason)
            return
        if source == "retry" and (wait := _due(record) - self._clock.now()) > 0:
            await self._clock.sleep(wait)
        failures = 0
        while True:
            try:
                disposition = await self._service.handle(command, work)
                break
            except INFRA_ERRORS as exc:
                failures += 1
                component = "kafka" if isinstance(exc, KafkaError) else "redis"
                self._metrics.infra_errors.labels(self.channel, component).inc()
                log.warning(
                    "command %s: %s unavailable (%s); retrying", command.command_id, component, exc
                )
                await asyncio.sleep(backoff(failures, 0.2, 10.0))
            except Exception as exc:  # nothing escapes the loop: dead-letter it, count it
                log.exception("command %s failed unexpectedly", command.command_id)
                await self._dead_letter(
                    record, f"internal error: {type(exc).__name__}: {exc}"[:500]
                )
                return
        if isinstance(disposition, Reject):
            await self._dead_letter(record, disposition.reason)
        elif isinstance(disposition, Defer):
            await self._defer(record, disposition)

    async def _produce(
        self,
        topic: str,
        record: Record,
        headers: list[tuple[str, bytes]],
        value: bytes | None = None,
    ) -> None:
        """Produce a copy of ``record`` (with ``value`` instead of its own, when given) and wait
        for the ack, retrying broker trouble."""
        failures = 0
        while True:
            try:
                await self._producer.send_and_wait(
                    topic,
                    value=record.value if value is None else value,
                    key=record.key,
                    headers=list(headers),
                )
            except KafkaError as exc:
                failures += 1
                self._metrics.infra_errors.labels(self.channel, "kafka").inc()
                log.warning("producing to %s failed (%s); retrying", topic, exc)
                await asyncio.sleep(backoff(failures, 0.2, 10.0))
            else:
                return

    async def _defer(self, record: Record, defer: Defer) -> None:
        headers = [
            (NOT_BEFORE_HEADER, str(int(defer.not_before * 1000)).encode()),
            (ATTEMPTS_HEADER, str(defer.attempts).encode()),
            (DEFER_REASON_HEADER, defer.reason.encode()),
        ]
        await self._produce(self.retry_topic, record, headers)
        self._metrics.deferred.labels(self.channel, defer.reason).inc()

    async def _dead_letter(self, record: Record, reason: str) -> None:
        self._metrics.dlq.labels(self.channel).inc()
        log.warning(
            "dead-lettering %s:%d@%d: %s", record.topic, record.partition, record.offset, reason
        )
        source = f"{record.topic}:{record.partition}:{record.offset}"
        letter = dead_letter(record.value, reason, source, self.main_topic)
        headers = [*letter.headers, *(record.headers or ())]
        await self._produce(self._dlq_topic, record, headers, letter.value)

    async def _commit(
        self, consumer: AIOKafkaConsumer, only: set[TopicPartition] | None = None
    ) -> None:
        offsets = {
            tp: committable
            for tp, tracker in self._offsets.items()
            if (only is None or tp in only) and (committable := tracker.committable()) is not None
        }
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError, KafkaError) as exc:
            # A rebalance took the partitions: their next owner redoes the uncommitted records,
            # and the ledger answers them.
            log.warning("offset commit failed: %s", exc)

    async def _drain(self, partitions: set[TopicPartition]) -> None:
        """Cancel what has sent nothing, await what has, commit, forget the partitions."""
        entries = [entry for entry in self._tasks.values() if entry.tp in partitions]
        for entry in entries:
            if not entry.work.critical:
                entry.task.cancel()
        if entries:
            await asyncio.wait([e.task for e in entries], timeout=self._service.sending_grace)
        if self._consumer is not None:
            await self._commit(self._consumer, only=partitions)
        for tp in partitions:
            self._offsets.pop(tp, None)
            if (handle := self._resumes.pop(tp, None)) is not None:
                handle.cancel()

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._drain(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("%s sender assigned %d partitions", self.channel, len(assigned))


def _due(record: Record) -> float:
    value = header(record, NOT_BEFORE_HEADER)
    try:
        return int(value) / 1000 if value is not None else 0.0
    except ValueError:
        return 0.0


def _attempts(record: Record) -> int:
    value = header(record, ATTEMPTS_HEADER)
    return int(value) if value is not None and value.isdigit() else 0
