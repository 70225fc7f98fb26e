"""Rate limits shared by every replica: GCRA, evaluated in Redis on Redis's own clock.

A send is charged ``cost`` units (an SMS: its segments) against several limits at once (the
sender identity and the account). ``acquire`` never sleeps: it answers with the wait until the
caller's slot. When that wait is at most ``max_wait`` the slot is **reserved** (every limit's
state advances, so other replicas queue behind it) and the caller sleeps the wait and sends;
when it is longer nothing is reserved and the caller decides (hold the command a little, or
move it to the retry topic).

The math (``gcra``) is a pure function on integer microseconds; the Lua script is the same
algorithm line by line, and ``MemoryLimiter`` runs the pure function for tests. With burst
``b`` and interval ``T = 1/rate``: a send of cost ``c`` may leave at
``tat - (max(b, c) - c) * T`` and moves the limit's theoretical arrival time ``tat`` to
``max(tat, send_at) + c * T``. A message larger than the burst therefore goes alone, once the
limit has fully drained. Redis ≥ 5 is needed (effects replication of a script that reads TIME).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis

from senders.core.clock import Clock

MICROS = 1_000_000


@dataclass(frozen=True, slots=True)
class Limit:
    """One rate limit: ``rate`` units per second, at most ``burst`` units at once."""

    key: str
    rate: float
    burst: int

    @property
    def interval_us(self) -> int:
        return max(1, round(MICROS / self.rate))


@dataclass(frozen=True, slots=True)
class Grant:
    """``granted``: the slot is reserved, send after ``wait`` s. Else: try again in ``wait`` s."""

    granted: bool
    wait: float


@dataclass(frozen=True, slots=True)
class Decision:
    granted: bool
    wait_us: int
    tats: tuple[int, ...]  # the new states; empty when not granted (nothing changes)


def gcra(
    tats: Sequence[int | None],
    limits: Sequence[tuple[int, int]],
    now_us: int,
    cost: int,
    max_wait_us: int,
) -> Decision:
    """One decision over several limits; ``limits`` are ``(interval_us, burst)`` pairs."""
    current = [now_us if tat is None or tat < now_us else tat for tat in tats]
    send_at = now_us
    for tat, (interval, burst) in zip(current, limits, strict=True):
        send_at = max(send_at, tat - (max(burst, cost) - cost) * interval)
    wait = send_at - now_us
    if wait > max_wait_us:
        return Decision(False, wait, ())
    new = tuple(
        max(tat, send_at) + cost * interval
        for tat, (interval, _) in zip(current, limits, strict=True)
    )
    return Decision(True, wait, new)


# KEYS: one per limit. ARGV: cost, max_wait_us, then interval_us and burst per key.
GCRA_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cost = tonumber(ARGV[1])
local max_wait = tonumber(ARGV[2])
local send_at = now
local tats = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[1 + 2 * i])
  local burst = tonumber(ARGV[2 + 2 * i])
  if burst < cost then burst = cost end
  local tat = tonumber(redis.call('GET', KEYS[i]))
  if tat == nil or tat < now then tat = now end
  tats[i] = tat
  local earliest = tat - (burst - cost) * interval
  if earliest > send_at then send_at = earliest end
end
local wait = send_at - now
if wait > max_wait then
  return {0, wait}
end
for i = 1, #KEYS do
  local interval = tonumber(ARGV[1 + 2 * i])
  local tat = tats[i]
  if send_at > tat then tat = send_at end
  local new_tat = tat + cost * interval
  local ttl_ms = math.floor((new_tat - now) / 1000) + 1
  redis.call('SET', KEYS[i], string.format('%d', new_tat), 'PX', ttl_ms)
end
return {1, wait}
"""


class Limiter(Protocol):
    async def acquire(self, limits: Sequence[Limit], cost: int, max_wait: float) -> Grant:
        """Reserve ``cost`` units on every limit if the slot is at most ``max_wait`` s away."""
        ...


class RedisLimiter:
    """GCRA in one Lua script; the limits of one call must share a hash tag (see keys.py)."""

    def __init__(self, redis: Redis) -> None:
        self._script = redis.register_script(GCRA_LUA)

    async def acquire(self, limits: Sequence[Limit], cost: int, max_wait: float) -> Grant:
        if not limits:
            return Grant(True, 0.0)
        args: list[int] = [cost, math.floor(max_wait * MICROS)]
        for limit in limits:
            args += [limit.interval_us, limit.burst]
        granted, wait_us = await self._script(keys=[limit.key for limit in limits], args=args)
        return Grant(bool(granted), int(wait_us) / MICROS)


class MemoryLimiter:
    """The same decisions in process memory on an injected clock (tests, single replica)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._tats: dict[str, int] = {}

    async def acquire(self, limits: Sequence[Limit], cost: int, max_wait: float) -> Grant:
        if not limits:
            return Grant(True, 0.0)
        now_us = round(self._clock.now() * MICROS)
        decision = gcra(
            [self._tats.get(limit.key) for limit in limits],
            [(limit.interval_us, limit.burst) for limit in limits],
            now_us,
            cost,
            math.floor(max_wait * MICROS),
        )
        if decision.granted:
            for limit, tat in zip(limits, decision.tats, strict=True):
                self._tats[limit.key] = tat
        return Grant(decision.granted, decision.wait_us / MICROS)
