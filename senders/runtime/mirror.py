"""``cartpulse consents mirror``: keep the Redis consent mirror in step with ``consents``.

Reads the compacted topic from the beginning in its own consumer group, applies each record
with ``ConsentStore.apply`` (never moving a consent backwards in time), dead-letters malformed
records, and commits after each applied batch. Redis trouble pauses the mirror (the batch is
retried), it never skips records. A stop while Redis is down ends the mirror at once without
committing the batch: the next run reads it again (applying a consent twice is harmless).
Senders run a lookup per command against what it writes.

A record a store wrote to ``consents`` itself (not through cartpulse) is appended to
``consents.history`` once it is applied (``senders.runtime.mirror_history``); Kafka trouble there is
retried like Redis trouble, so the mirror never commits past a record the history lacks.

While caught up, the mirror refreshes its heartbeat (``senders.adapters.heartbeat``) every
``BEAT_INTERVAL`` seconds: per assigned partition whose position has reached the partition's
end, the time it checked. The senders report not-ready while it is absent or old.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from functools import partial
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from senders.adapters.consents import ConsentStore, parse_consent_record
from senders.adapters.errors import INFRA_ERRORS
from senders.adapters.heartbeat import BEAT_INTERVAL, CATCH_UP_INTERVAL, MirrorHeartbeat
from senders.core.clock import Clock, SystemClock
from senders.core.outcomes import retry_until_stopped
from senders.runtime.consumer import Record
from senders.runtime.metrics import Metrics
from senders.runtime.mirror_history import StoreHistory
from streams.contract.errors import InvalidRecord
from streams.runtime.kafka import dead_letter
from streams.runtime.settings import Settings

log = logging.getLogger(__name__)


class ConsentMirror:
    def __init__(
        self,
        settings: Settings,
        store: ConsentStore,
        producer: Any,
        metrics: Metrics,
        topic: str,
        dlq_topic: str,
        heartbeat: MirrorHeartbeat,
        clock: Clock | None = None,
        history: StoreHistory | None = None,
    ) -> None:
        self._s = settings
        self._history = history
        self._store = store
        self._heartbeat = heartbeat
        self._clock = clock or SystemClock()
        self._producer = producer
        self._metrics = metrics
        self._topic = topic
        self._dlq_topic = dlq_topic
        self.caught_up = False
        self.applied = 0

    async def run(self, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            self._topic,
            **self._s.kafka_client_options(),
            group_id=self._s.sender_group_id("consent-mirror"),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        last_beat, interval = -BEAT_INTERVAL, BEAT_INTERVAL
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=300, max_records=500)
                applied = True
                for records in batch.values():
                    applied = applied and await self._apply(records, stop)
                if not applied:
                    return  # stopped mid-batch: leave its offsets uncommitted
                if batch:
                    with contextlib.suppress(KafkaError):
                        await consumer.commit()
                if time.monotonic() - last_beat >= interval:
                    complete = await self._beat(consumer)
                    # Behind on a partition (or none assigned yet): look again soon, so the
                    # senders learn of the catch-up within a fraction of a second.
                    interval = BEAT_INTERVAL if complete else CATCH_UP_INTERVAL
                    last_beat = time.monotonic()
        finally:
            with contextlib.suppress(KafkaError):
                await consumer.stop()

    async def _apply(self, records: list[Record], stop: asyncio.Event) -> bool:
        """Apply every record, retrying Redis until it answers; False if ``stop`` came first."""
        for record in records:
            applied = partial(self._apply_one, record)
            if not await retry_until_stopped(applied, INFRA_ERRORS, stop, self._unavailable):
                return False
        return True

    def _unavailable(self, exc: BaseException) -> None:
        component = "kafka" if isinstance(exc, KafkaError) else "redis"
        self._metrics.infra_errors.labels("consents", component).inc()
        log.warning("consent mirror: %s unavailable (%s); retrying", component, exc)

    async def _apply_one(self, record: Record) -> None:
        try:
            update = parse_consent_record(record.key, record.value)
        except InvalidRecord as exc:
            self._metrics.mirror_records.labels("invalid").inc()
            source = f"{record.topic}:{record.partition}:{record.offset}"
            letter = dead_letter(record.value, f"consent mirror: {exc.reason}", source, self._topic)
            await self._producer.send_and_wait(
                self._dlq_topic, value=letter.value, key=record.key, headers=letter.headers
            )
            return
        landed = await self._store.apply(update)
        if self._history is not None:
            kept = await self._history.take(record)
            if kept in ("appended", "seen"):
                self._metrics.mirror_history.labels(kept).inc()
        outcome = "deleted" if update.consent is None else ("applied" if landed else "stale")
        self._metrics.mirror_records.labels(outcome).inc()
        self.applied += 1

    async def _beat(self, consumer: AIOKafkaConsumer) -> bool:
        """Write the heartbeat of every assigned partition read up to its end; True when that
        is every assigned partition."""
        assignment = consumer.assignment()
        if not assignment:
            return False
        now = self._clock.now()  # before the end offsets: never claims more than was read
        try:
            ends = await consumer.end_offsets(list(assignment))
            caught_up = {
                tp.partition: now for tp in assignment if await consumer.position(tp) >= ends[tp]
            }
        except KafkaError as exc:
            log.warning("consent mirror: end offsets not known (%s); heartbeat skipped", exc)
            return False
        complete = len(caught_up) == len(assignment)
        self.caught_up = self.caught_up or complete
        try:
            await self._heartbeat.beat(caught_up)
        except INFRA_ERRORS as exc:
            self._metrics.infra_errors.labels("consents", "redis").inc()
            log.warning("consent mirror: heartbeat not written, Redis unavailable (%s)", exc)
        return complete
