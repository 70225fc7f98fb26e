"""Which customers the SMS sender has texted at a phone number (Redis), for inbound STOPs.

An inbound SMS names a number, not a customer. Right before it sends, the SMS sender records
``customer_id`` under the number (a sorted set scored by time, newest kept, hashed number in
the key); the webhooks service reads it back to turn a STOP into opt-outs of those customers.
A number nobody was texted at resolves to no one: the webhooks then record the opt-out under
the number itself (``consents.address_subject``), which the sender also checks.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from datetime import timedelta
from typing import Final, Protocol

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from senders.core.keys import Keys
from streams.contract.privacy import Pseudonyms

MAX_CUSTOMERS_PER_NUMBER: Final = 20  # a shared family phone, not a mailing list
REFRESH: Final = timedelta(days=1)  # a pair written more recently than this is not rewritten
MAX_RECALLED: Final = 50_000  # (number, customer) pairs a process recalls having written


class PhoneIndex(Protocol):
    async def remember(self, address: str, customer_id: str, at_ms: int) -> None:
        """Note that ``customer_id`` is reached at ``address`` (idempotent)."""
        ...


class PhoneBook:
    """The index in Redis. ``remember`` is on the SMS send path: it writes (one round trip:
    the customer's erasure index and the number's set side by side) only when this process has
    not written the same pair within ``refresh``, so a customer texted again soon (the next
    journey step, a redelivered command) costs nothing. A skipped write leaves the pair's score
    and the key's TTL at most ``refresh`` old."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        ttl: timedelta,
        keep: int = MAX_CUSTOMERS_PER_NUMBER,
        refresh: timedelta = REFRESH,
        pseudonyms: Pseudonyms | None = None,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._pseudonyms = pseudonyms or Pseudonyms()
        self._ttl = max(1, int(ttl.total_seconds()))
        self._keep = keep
        self._refresh_ms = int(min(refresh, ttl / 2).total_seconds() * 1000)
        self._written: OrderedDict[tuple[str, str], int] = OrderedDict()

    async def remember(self, address: str, customer_id: str, at_ms: int) -> None:
        pair = (address, customer_id)
        last = self._written.get(pair)
        if last is not None and 0 <= at_ms - last < self._refresh_ms:
            return
        key = self._keys.phone(address)
        async with (
            self._redis.pipeline(transaction=False) as index,
            self._redis.pipeline(transaction=True) as pipe,
        ):
            # The index in another hash slot (Redis Cluster), so not in the MULTI: sent first
            # and alongside it. Either failing raises, and the pair is written again next time.
            index_key(index, self._keys, self._pseudonyms, customer_id, key, ttl=self._ttl)
            pipe.zadd(key, {customer_id: at_ms})
            pipe.zremrangebyrank(key, 0, -(self._keep + 1))
            pipe.expire(key, self._ttl)
            await asyncio.gather(index.execute(), pipe.execute())
        self._written[pair] = at_ms
        self._written.move_to_end(pair)
        if len(self._written) > MAX_RECALLED:
            self._written.popitem(last=False)

    async def customers(self, address: str) -> list[str]:
        """The customers texted at ``address``, most recent first (at most ``keep``)."""
        key = self._keys.phone(address)
        members = await self._redis.zrevrange(key, 0, self._keep - 1)
        return [m.decode() if isinstance(m, bytes) else str(m) for m in members]


def index_key(
    pipe: Pipeline,
    keys: Keys,
    pseudonyms: Pseudonyms,
    customer_id: str,
    key: str,
    *,
    ttl: int | None = None,
    until_ms: int | None = None,
) -> None:
    """Queue on ``pipe`` the note of ``key`` in the customer's erasure index (``Keys.erasable``),
    kept at least ``ttl`` seconds or until ``until_ms``: an erasure finds there every key that
    names the customer (senders/runtime/erasure.py). The index is in another hash slot than ``key``
    (Redis Cluster): ``pipe`` is a non-transactional pipeline, and the caller queues this
    before the commands writing ``key``."""
    index = keys.erasable(pseudonyms.customer(customer_id))
    pipe.sadd(index, key)
    for first in (True, False):  # a new index gets the expiry, an older one the later one
        if until_ms is not None:
            pipe.pexpireat(index, until_ms, nx=first, gt=not first)
        else:
            pipe.expire(index, ttl or 1, nx=first, gt=not first)
