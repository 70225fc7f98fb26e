"""Remembering which provider callbacks were handled (Redis), so a retry is recorded once.

``claim`` marks a fingerprint ``pending`` for a short while before the work, ``done`` makes it
``done`` for ``ttl`` after the work is durable, ``release`` forgets a failed attempt so the
provider's next retry does the work. A retry that meets ``pending`` (the first attempt is still
running, or died within the last minute) is told to come back later, never dropped.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final, Literal, Protocol

from redis.asyncio import Redis

from senders.core.keys import Keys

Seen = Literal["new", "pending", "done"]
# The work of one callback is cut off after HANDLER_DEADLINE (and the claim released), so a
# ``pending`` marker outlives the attempt that set it. If that attempt's process died, the
# marker expires after PENDING_TTL and the provider's next retry does the work.
HANDLER_DEADLINE: Final = 30.0  # seconds
PENDING_TTL: Final = 2 * int(HANDLER_DEADLINE)  # seconds

RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == 'pending' then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Deduplicator(Protocol):
    async def claim(self, scope: str, fingerprint: str) -> Seen: ...

    async def done(self, scope: str, fingerprint: str) -> None: ...

    async def release(self, scope: str, fingerprint: str) -> None: ...


class RedisDeduplicator:
    def __init__(self, redis: Redis, keys: Keys, ttl: timedelta) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl = max(1, int(ttl.total_seconds()))
        self._release = redis.register_script(RELEASE_LUA)

    async def claim(self, scope: str, fingerprint: str) -> Seen:
        key = self._keys.webhook_seen(scope, fingerprint)
        if await self._redis.set(key, "pending", nx=True, ex=PENDING_TTL):
            return "new"
        value = await self._redis.get(key)
        if value is None:  # expired between the two calls: the earlier attempt died
            return await self.claim(scope, fingerprint)
        return "done" if value == b"done" else "pending"

    async def done(self, scope: str, fingerprint: str) -> None:
        await self._redis.set(self._keys.webhook_seen(scope, fingerprint), "done", ex=self._ttl)

    async def release(self, scope: str, fingerprint: str) -> None:
        await self._release(keys=[self._keys.webhook_seen(scope, fingerprint)])
