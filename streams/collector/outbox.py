"""The collector's one face to Kafka: a request's verdicts produced, and acknowledged, or not.

Accepted events go to their input topic keyed by ``session_id``; rejected ones to the input's
``.dlq`` as the importer writes them (``streams.runtime.kafka.dead_letter``). ``deliver`` returns
only
once Kafka acknowledged every record (the producer is idempotent, ``acks=all``); when any one
is not acknowledged within the timeout it raises ``KafkaUnavailable`` and the request is
answered 503: its client sends it again, and a record that did land meanwhile is a repeat the
detector drops by ``event_id`` (docs/semantics.md, Events).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from aiokafka.errors import KafkaError

from streams.collector.batch import Accepted, Verdict
from streams.contract.errors import RetryAfter
from streams.contract.topics import TopicCatalogue
from streams.runtime.kafka import Producer, dead_letter


class KafkaUnavailable(RetryAfter):
    """Kafka did not acknowledge a request's records in time; send the request again."""


class Outbox:
    """Produces a request's verdicts; ``deliver`` is safe to call concurrently."""

    def __init__(
        self, producer: Producer, topics: TopicCatalogue, timeout: float, retry_after: float
    ) -> None:
        self._producer = producer
        self._topics = topics
        self._timeout = timeout
        self._retry_after = retry_after

    async def deliver(self, verdicts: Sequence[Verdict], source: str) -> float:
        """Produce every verdict and wait for all acks; returns the seconds that took.

        ``source`` names the request in the dead letters' ``cartpulse.source`` header (with the
        event's index). Raises ``KafkaUnavailable`` when Kafka refuses a record or does not
        acknowledge them all within the timeout.
        """
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout):
                pending = [await self._send(verdict, source) for verdict in verdicts]
                await asyncio.gather(*pending)
        except (TimeoutError, KafkaError) as exc:
            raise KafkaUnavailable(
                self._retry_after, f"Kafka did not acknowledge the events: {exc!r:.200}"
            ) from None
        return time.perf_counter() - started

    async def _send(self, verdict: Verdict, source: str) -> asyncio.Future[object]:
        if isinstance(verdict, Accepted):
            future = await self._producer.send(
                self._topics.name(verdict.topic), value=verdict.payload, key=verdict.key
            )
        else:
            name = self._topics.name(verdict.topic)
            where = f"{source}#{verdict.index}"
            letter = dead_letter(verdict.payload, verdict.reason, where, name)
            future = await self._producer.send(
                self._topics.dlq(verdict.topic), value=letter.value, headers=letter.headers
            )
        # A request that timed out no longer awaits its futures: their outcome is read here.
        future.add_done_callback(_retrieve)
        return future


def _retrieve(future: asyncio.Future[object]) -> None:
    if not future.cancelled():
        future.exception()
