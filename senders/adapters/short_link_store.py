"""Short SMS links in Redis: registered by the SMS sender, resolved by the webhooks service.

One string key per id (``Keys.short_link``) holding the ``LinkRecord`` as JSON, kept until the
record's ``expires_ms`` plus ``EXPIRED_GRACE`` (a click in the grace period is told the link
has expired; after it, that the link is unknown). Registering is idempotent: ``SET NX`` keeps
the first record of an id, and a second registration of the same link (a redelivered or
retried command) leaves it as it is. An id already holding another link (an HMAC collision:
about one in 2^59 per pair of links) is refused with ``InvalidRecord``, never overwritten.
Redis errors propagate as redis-py raises them (the callers' ``INFRA_ERRORS``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Final, Protocol

from redis.asyncio import Redis

from senders.adapters.phonebook import index_key
from senders.core.keys import Keys
from senders.messages.short_links import LinkRecord
from streams.contract.errors import InvalidRecord
from streams.contract.privacy import Pseudonyms

EXPIRED_GRACE: Final = timedelta(days=7)


class LinkRegistry(Protocol):
    async def register(self, links: Sequence[tuple[str, LinkRecord]]) -> None:
        """Make every ``(id, record)`` resolvable; returns once Redis has them all."""
        ...


class LinkBook(Protocol):
    async def resolve(self, link_id: str) -> LinkRecord | None:
        """The record under ``link_id``, or None when there is none (unknown or long gone)."""
        ...


class RedisShortLinks:
    """Both ports on one Redis (or Redis Cluster: every key stands alone)."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        grace: timedelta = EXPIRED_GRACE,
        pseudonyms: Pseudonyms | None = None,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._pseudonyms = pseudonyms or Pseudonyms()
        self._grace_ms = int(grace.total_seconds() * 1000)

    async def register(self, links: Sequence[tuple[str, LinkRecord]]) -> None:
        if not links:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for link_id, record in links:  # each a key naming the customer: in their erasure
                key, until = self._keys.short_link(link_id), record.expires_ms + self._grace_ms
                names = self._pseudonyms  # index, queued before the key it points to
                index_key(pipe, self._keys, names, record.customer_id, key, until_ms=until)
            indexed = len(pipe)
            for link_id, record in links:
                key = self._keys.short_link(link_id)
                pipe.set(key, record.to_json(), nx=True, pxat=record.expires_ms + self._grace_ms)
                pipe.get(key)
            answers = await pipe.execute()
        for (link_id, record), stored in zip(links, answers[indexed + 1 :: 2], strict=True):
            if stored is None:  # gone between SET and GET: only when already past its grace
                continue
            if not LinkRecord.from_json(stored).same_link(record):
                raise InvalidRecord(f"short link id {link_id} already holds another link")

    async def resolve(self, link_id: str) -> LinkRecord | None:
        raw = await self._redis.get(self._keys.short_link(link_id))
        if raw is None:
            return None
        return LinkRecord.from_json(raw)
