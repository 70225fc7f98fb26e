"""Each coupon's state in Redis, for the senders' gate and the registrar (``ports.CouponStates``).

Per code, one hash ``{prefix}{coupon:<CODE>}`` (``rank``, ``record``: the kept record's JSON,
``redeemed``: the first order that used it) and one set ``…:reuses`` (the other orders). Both
carry the code's hash tag, so each script runs on one Redis Cluster shard, and expire
``coupon_retention`` after the coupon does. ``put`` never lowers the rank (a replayed
``issued`` record does not undo a registration); ``redeem`` is one atomic step, so two orders
using a code at once are told apart.

Per customer a record names, by their pseudonym: ``Keys.coupons_of`` (code → expiry), written
before the state and kept for good like the ``coupons`` topic's records, so an erasure finds
every code to rewrite (docs/compliance.md, Erasure). Whether a customer was erased is the
consent mirror's ``erased:<pseudonym>`` consent (``senders.adapters.consents``).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import cast

from redis.asyncio import Redis

from senders.adapters.consents import erased_subject
from senders.core.keys import Keys
from senders.coupons.ports import Redemption
from streams.contract.commands import CHANNELS
from streams.contract.coupons import CouponRecord, normal_code, parse_coupon
from streams.contract.errors import InvalidRecord
from streams.contract.privacy import Pseudonyms

MIN_TTL_MS = 86_400_000  # a coupon already expired is still kept a day (late reuse reports)

# KEYS: state; ARGV: rank, record, ttl ms. Returns the kept record.
PUT_LUA = """
local kept = redis.call('HGET', KEYS[1], 'rank')
if kept and tonumber(kept) > tonumber(ARGV[1]) then
  return redis.call('HGET', KEYS[1], 'record')
end
redis.call('HSET', KEYS[1], 'rank', ARGV[1], 'record', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return ARGV[2]
"""

# KEYS: state, reuses; ARGV: order id. Returns unknown | first | same | reuse | repeat.
REDEEM_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'unknown' end
local first = redis.call('HGET', KEYS[1], 'redeemed')
if not first then
  redis.call('HSET', KEYS[1], 'redeemed', ARGV[1])
  return 'first'
end
if first == ARGV[1] then return 'same' end
if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then
  redis.call('PEXPIRE', KEYS[2], redis.call('PTTL', KEYS[1]))
  return 'reuse'
end
return 'repeat'
"""


class RedisCouponStates:
    def __init__(
        self, redis: Redis, keys: Keys, retention: timedelta, pseudonyms: Pseudonyms
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._names = pseudonyms
        self._prefix = keys.prefix
        self._retention_ms = int(retention.total_seconds() * 1000)
        self._put = redis.register_script(PUT_LUA)
        self._redeem = redis.register_script(REDEEM_LUA)

    def key(self, code: str) -> str:
        tag = normal_code(code).replace("{", "(").replace("}", ")")
        return f"{self._prefix}{{coupon:{tag}}}"

    async def get(self, code: str) -> CouponRecord | None:
        raw = await self._redis.hget(self.key(code), "record")  # type: ignore[misc]  # redis-py's async hget is typed as sync-or-async
        if raw is None:
            return None
        try:
            return parse_coupon(raw)
        except InvalidRecord:
            return None  # written by another version: as if unknown (the registrar rewrites it)

    async def put(self, record: CouponRecord) -> CouponRecord:
        now_ms = int(datetime.now(UTC).timestamp() * 1000)
        expires_ms = int(record.expires_at.timestamp() * 1000)
        ttl = max(expires_ms - now_ms, 0) + self._retention_ms
        if record.customers:  # the index first: a state is never kept where no erasure looks
            async with self._redis.pipeline(transaction=False) as pipe:
                for customer in sorted(record.customers):
                    index = self._keys.coupons_of(self._names.customer(customer))
                    pipe.hset(index, record.code, str(expires_ms))  # as written: the topic's key
                await pipe.execute()
        kept = await self._put(
            keys=[self.key(record.code)],
            args=[record.rank, record.to_json(), max(ttl, MIN_TTL_MS)],
        )
        return record if kept == record.to_json() else parse_coupon(cast(bytes, kept))

    async def erased(self, customers: Collection[str]) -> dict[str, str]:
        ordered = sorted(customers)
        if not ordered:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for customer in ordered:
                retired = erased_subject(self._names, customer)
                pipe.exists(*(self._keys.consent(retired, channel) for channel in CHANNELS))
            found = await pipe.execute()
        return {c: self._names.customer(c) for c, n in zip(ordered, found, strict=True) if n}

    async def unindex(self, code: str, subjects: Collection[str]) -> None:
        for subject in subjects:
            await self._redis.hdel(self._keys.coupons_of(subject), code)  # type: ignore[misc]  # redis-py's async hdel is typed as sync-or-async

    async def codes_of(self, subject: str) -> dict[str, int]:
        raw = await self._redis.hgetall(self._keys.coupons_of(subject))  # type: ignore[misc]  # redis-py's async hgetall is typed as sync-or-async
        return {_text(code): int(expires) for code, expires in raw.items()}

    async def drop_index(self, subject: str) -> None:
        await self._redis.delete(self._keys.coupons_of(subject))

    async def redeem(self, code: str, order_id: str) -> Redemption:
        key = self.key(code)
        outcome = await self._redeem(keys=[key, f"{key}:reuses"], args=[order_id])
        text = outcome.decode() if isinstance(outcome, bytes) else str(outcome)
        return cast(Redemption, text)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
