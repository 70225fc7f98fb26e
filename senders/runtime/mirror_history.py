"""The consent mirror's second job: a ``consents`` record a store wrote itself goes to the
consent history, once.

cartpulse tags every ``consents`` record it writes with its history entry's id (header
``cartpulse.history_id``; ``streams.runtime.consent_ledger`` wrote the entry first). A record
without
the tag was written by someone else: the store's backfill, its checkout, its preference
centre. ``StoreHistory`` appends it to ``consents.history`` with source ``store`` and the
record's own source and evidence inside the evidence.

Once per record identity (key, ``recorded_at``, status): a Redis hash per consents key
(``Keys.consent_history``) holds the identities already appended, written after Kafka
acknowledged the entry. A mirror restarted mid-batch, a rebalance, or a new consumer group
reading the topic from its start find them there and append nothing. A crash between the
acknowledgement and the Redis write appends the entry a second time with the same
``history_id``; the history's readers print each id once. A tombstone is not a consent change
and is not appended.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Literal, Protocol, cast

from redis.asyncio import Redis

from senders.core.keys import Keys
from senders.runtime.consumer import Record
from streams.contract.consent_history import (
    HISTORY_ID_HEADER,
    SOURCE_STORE,
    ConsentEntry,
    store_entry,
)

Outcome = Literal["cartpulse", "tombstone", "appended", "seen"]


class HistoryAppender(Protocol):
    async def append(self, entry: ConsentEntry) -> str:
        """Put ``entry`` on ``consents.history``; returns its ``history_id`` once Kafka
        acknowledged it."""
        ...


def written_by_cartpulse(record: Record) -> bool:
    return any(name == HISTORY_ID_HEADER for name, _ in record.headers or ())


class StoreHistory:
    def __init__(self, redis: Redis, keys: Keys, history: HistoryAppender) -> None:
        self._redis = redis
        self._keys = keys
        self._history = history

    async def take(self, record: Record) -> Outcome:
        """Append ``record`` (a valid ``consents`` record) to the history unless cartpulse
        wrote it, it is a tombstone, or it was appended before. Raises what Kafka or Redis
        raise (the mirror retries the record); ``InvalidRecord`` for a record that is not a
        consent."""
        if written_by_cartpulse(record):
            return "cartpulse"
        if record.value is None:
            return "tombstone"
        where = f"{record.topic}:{record.partition}:{record.offset}"
        entry = store_entry(record.key, record.value, where, SOURCE_STORE)
        key = self._keys.consent_history(entry.subject, entry.channel)
        identity = f"{entry.recorded_at_ms}:{entry.status}"
        if await cast(Awaitable[bool], self._redis.hexists(key, identity)):
            return "seen"
        appended = await self._history.append(entry)
        await cast(Awaitable[int], self._redis.hset(key, identity, appended))
        return "appended"
