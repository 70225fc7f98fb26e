"""The one way cartpulse writes a consent change: its ``consents.history`` entry, then its
``consents`` record (the current view), each acknowledged by Kafka.

The order is the guarantee: the current view never holds a change cartpulse wrote without its
history entry (no consent takes effect without its proof). If the history entry is not taken,
nothing is written and the error is the caller's; if the history entry is taken and the
``consents`` record is not, the history holds a change the current view lacks, and the error
is the caller's too: every caller repeats the whole change (Twilio retries a webhook answered
503, the send loop retries the opt-out in place, the unsubscribe page asks to try again, an
import counts the line as not written). A repeat writes an entry with the same ``history_id``
(same key, time, status and source) or, where the caller takes a new time, a second entry;
the readers (``streams.tools.consent_trail``) print each id once.

Kafka transactions would make the pair atomic only for readers in ``read_committed``, and the
journeys and the mirror read ``consents`` uncommitted; they would also serialise the webhooks'
concurrent requests behind one transactional producer. Not used.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from aiokafka.errors import KafkaError

from streams.contract.consent_history import (
    HISTORY_ID_HEADER,
    ConsentEntry,
    consents_record,
    history_id,
    history_record,
)
from streams.contract.privacy import Pseudonyms
from streams.contract.topics import Topic, TopicCatalogue
from streams.runtime.kafka import Producer
from streams.runtime.settings import Settings

log = logging.getLogger(__name__)


def history_names(settings: Settings) -> Pseudonyms:
    """The deployment's pseudonyms for the history; warns when ``CARTPULSE_ADDRESS_HASH_KEY``
    is not set."""
    names = Pseudonyms.of(settings)
    if not names.key:
        log.warning(
            "CARTPULSE_ADDRESS_HASH_KEY is not set: consents.history keeps customers and "
            "addresses as plain SHA-256 hashes, which a list of customer ids or of phone "
            "numbers reverses (docs/compliance.md, Consent history)"
        )
    return names


class ConsentLedger:
    """Writes consent changes through one producer (see the module for the guarantees)."""

    def __init__(
        self,
        producer: Producer,
        topics: TopicCatalogue,
        names: Pseudonyms,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._producer = producer
        self._names = names
        self._clock = clock
        self._consents = topics.name(Topic.CONSENTS)
        self._history = topics.name(Topic.CONSENT_HISTORY)

    @property
    def consents_topic(self) -> str:
        return self._consents

    @classmethod
    def of(cls, settings: Settings, producer: Producer) -> ConsentLedger:
        return cls(producer, TopicCatalogue.of(settings), history_names(settings))

    async def record(self, entry: ConsentEntry) -> None:
        """The history entry, then the ``consents`` record tagged with the entry's id; returns
        once both are acknowledged. Raises ``KafkaError`` when either is not taken."""
        await self.append(entry)
        topic, key, value, headers = self._current(entry)
        await (await self._producer.send(topic, value=value, key=key, headers=headers))

    async def append(self, entry: ConsentEntry) -> str:
        """Only the history entry (for a change already on ``consents``: a store's record);
        returns its ``history_id`` once Kafka acknowledged it."""
        key, value = history_record(entry, self._names, int(self._clock() * 1000))
        await (await self._producer.send(self._history, value=value, key=key))
        return history_id(entry, self._names)

    async def record_all(self, entries: Sequence[ConsentEntry]) -> list[BaseException | None]:
        """``record`` for many entries, the sends of each step in flight together: every
        history entry, then the ``consents`` record of each entry Kafka took. Per entry, None
        when both were taken, else the error; raises nothing (an import counts them)."""
        written_at = int(self._clock() * 1000)
        history = [history_record(entry, self._names, written_at) for entry in entries]
        errors = await _settle(self._producer, [(self._history, k, v, None) for k, v in history])
        current = [
            self._current(entry)
            for entry, error in zip(entries, errors, strict=True)
            if error is None
        ]
        taken = iter(await _settle(self._producer, current))
        return [error if error is not None else next(taken) for error in errors]

    def _current(self, entry: ConsentEntry) -> Send:
        """The ``consents`` record, tagged with its history entry's id (the mirror appends
        only records without it)."""
        key, value = consents_record(entry)
        tag = history_id(entry, self._names).encode()
        return self._consents, key, value, [(HISTORY_ID_HEADER, tag)]


Send = tuple[str, bytes, bytes, list[tuple[str, bytes]] | None]


async def _settle(producer: Producer, sends: Sequence[Send]) -> list[BaseException | None]:
    """Queue every send, then wait for each acknowledgement; per send None or its error."""
    queued: list[asyncio.Future[object] | BaseException] = []
    for topic, key, value, headers in sends:
        try:
            queued.append(await producer.send(topic, value=value, key=key, headers=headers))
        except KafkaError as exc:
            queued.append(exc)
    futures = [q for q in queued if not isinstance(q, BaseException)]
    outcomes = iter(await asyncio.gather(*futures, return_exceptions=True))
    errors: list[BaseException | None] = []
    for item in queued:
        if isinstance(item, BaseException):
            errors.append(item)
        else:
            outcome = next(outcomes)
            errors.append(outcome if isinstance(outcome, BaseException) else None)
    return errors
