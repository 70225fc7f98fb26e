"""The exactly-once ledger: one Redis hash per ``command_id``, moved on by Lua scripts.

States and who may move them (``owner`` is one task of one replica)::

    (none) ──claim──▶ claimed (TTL: claim_ttl) ──mark_sending──▶ sending ──finish──▶ final
                         ▲    │ release (deferred, cancelled)        │ unsend (definitely
                         │    ▼                                      │  not sent: 429,
                         │  (none)                                   ▼  refused) → claimed
                         └──── a claim that expires (its replica died) is free to claim again

* A **claimed** command has not been sent; its owner may die and the claim simply expires.
* A **sending** command may have reached the provider. It never expires with the claim TTL
  (only with the ledger TTL) and is never sent again: a redelivery that finds it older than
  the request timeout finishes it as ``unknown`` (``take_over``), because a duplicate message
  is worse than a missing one.
* A **final** command keeps its result (the ``send.results`` record) and whether that was
  published; a redelivery republishes an unpublished result or reports ``duplicate``.

Every transition is one script on one key, timed by Redis's clock, so replicas never race.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from redis.asyncio import Redis

from senders.core.clock import Clock
from senders.core.keys import Keys

# The states are pure values (``ledger_states.py``: ``decide`` reads them); named here too.
from senders.core.ledger_states import Busy as Busy
from senders.core.ledger_states import Claimed as Claimed
from senders.core.ledger_states import ClaimState as ClaimState
from senders.core.ledger_states import Finished as Finished
from senders.core.ledger_states import FinishOutcome as FinishOutcome
from senders.core.ledger_states import Sending as Sending


class Ledger(Protocol):
    async def claim(self, command_id: str, owner: str) -> ClaimState: ...

    async def mark_sending(self, command_id: str, owner: str) -> bool:
        """Claimed by ``owner`` (or unclaimed) → sending. False: someone else owns it."""
        ...

    async def unsend(self, command_id: str, owner: str) -> bool:
        """Sending → claimed again, after a definite non-send (the request never arrived)."""
        ...

    async def release(self, command_id: str, owner: str) -> bool:
        """Drop ``owner``'s claim (the command was deferred or the work cancelled)."""
        ...

    async def finish(self, command_id: str, owner: str, result: bytes) -> FinishOutcome:
        """Claimed or sending by ``owner`` (or unclaimed) → final with ``result``."""
        ...

    async def take_over(self, command_id: str, owner: str, min_age: float, result: bytes) -> bool:
        """Sending for at least ``min_age`` seconds → final with ``result`` (``unknown``)."""
        ...

    async def mark_published(self, command_id: str) -> None: ...


_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local h = redis.call('HMGET', KEYS[1], 's', 'o', 't', 'r', 'p')
local s, o = h[1], h[2]
"""

CLAIM_LUA = (
    _NOW_MS
    + """
if not s then
  redis.call('HSET', KEYS[1], 's', 'c', 'o', ARGV[1], 't', now)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {'claimed'}
end
if s == 'c' then
  if o == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return {'claimed'}
  end
  return {'busy', redis.call('PTTL', KEYS[1])}
end
if s == 's' then
  return {'sending', now - tonumber(h[3]), o}
end
return {'final', h[4], h[5]}
"""
)

MARK_SENDING_LUA = (
    _NOW_MS
    + """
if (not s) or (s == 'c' and o == ARGV[1]) then
  redis.call('HSET', KEYS[1], 's', 's', 'o', ARGV[1], 't', now)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
)

UNSEND_LUA = (
    _NOW_MS
    + """
if s == 's' and o == ARGV[1] then
  redis.call('HSET', KEYS[1], 's', 'c', 't', now)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
)

RELEASE_LUA = (
    _NOW_MS
    + """
if s == 'c' and o == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""
)

FINISH_LUA = (
    _NOW_MS
    + """
if (not s) or ((s == 'c' or s == 's') and o == ARGV[1]) then
  redis.call('HSET', KEYS[1], 's', 'f', 'o', ARGV[1], 't', now, 'r', ARGV[2], 'p', '0')
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {'ok'}
end
if s == 'f' then
  return {'final', h[4], h[5]}
end
return {'lost'}
"""
)

TAKE_OVER_LUA = (
    _NOW_MS
    + """
if s == 's' and now - tonumber(h[3]) >= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 's', 'f', 'o', ARGV[1], 't', now, 'r', ARGV[3], 'p', '0')
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return 1
end
return 0
"""
)

MARK_PUBLISHED_LUA = (
    _NOW_MS
    + """
if s == 'f' then
  redis.call('HSET', KEYS[1], 'p', '1')
  return 1
end
return 0
"""
)


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisLedger:
    """The ledger on Redis (standalone or Cluster: every script touches one key)."""

    def __init__(self, redis: Redis, keys: Keys, claim_ttl: float, ledger_ttl: float) -> None:
        self._keys = keys
        self._claim_ttl = _ms(claim_ttl)
        self._ledger_ttl = _ms(ledger_ttl)
        self._claim = redis.register_script(CLAIM_LUA)
        self._sending = redis.register_script(MARK_SENDING_LUA)
        self._unsend = redis.register_script(UNSEND_LUA)
        self._release = redis.register_script(RELEASE_LUA)
        self._finish = redis.register_script(FINISH_LUA)
        self._take_over = redis.register_script(TAKE_OVER_LUA)
        self._published = redis.register_script(MARK_PUBLISHED_LUA)

    async def claim(self, command_id: str, owner: str) -> ClaimState:
        reply = await self._claim(
            keys=[self._keys.ledger(command_id)], args=[owner, self._claim_ttl]
        )
        kind = _text(reply[0])
        if kind == "claimed":
            return Claimed()
        if kind == "busy":
            return Busy(max(int(reply[1]), 0) / 1000)
        if kind == "sending":
            return Sending(int(reply[1]) / 1000, _text(reply[2]))
        return Finished(bytes(reply[1]), _text(reply[2]) == "1")

    async def mark_sending(self, command_id: str, owner: str) -> bool:
        key = self._keys.ledger(command_id)
        return bool(await self._sending(keys=[key], args=[owner, self._ledger_ttl]))

    async def unsend(self, command_id: str, owner: str) -> bool:
        key = self._keys.ledger(command_id)
        return bool(await self._unsend(keys=[key], args=[owner, self._claim_ttl]))

    async def release(self, command_id: str, owner: str) -> bool:
        return bool(await self._release(keys=[self._keys.ledger(command_id)], args=[owner]))

    async def finish(self, command_id: str, owner: str, result: bytes) -> FinishOutcome:
        key = self._keys.ledger(command_id)
        reply = await self._finish(keys=[key], args=[owner, result, self._ledger_ttl])
        kind = _text(reply[0])
        if kind == "ok":
            return "ok"
        if kind == "final":
            return Finished(bytes(reply[1]), _text(reply[2]) == "1")
        return "lost"

    async def take_over(self, command_id: str, owner: str, min_age: float, result: bytes) -> bool:
        key = self._keys.ledger(command_id)
        args: list[str | int | bytes] = [owner, _ms(min_age), result, self._ledger_ttl]
        return bool(await self._take_over(keys=[key], args=args))

    async def mark_published(self, command_id: str) -> None:
        await self._published(keys=[self._keys.ledger(command_id)], args=[])


@dataclass(slots=True)
class _Entry:
    state: Literal["c", "s", "f"]
    owner: str
    since: float
    expires: float
    result: bytes = b""
    published: bool = False


class MemoryLedger:
    """The same state machine in memory on an injected clock (the contract tests' fake)."""

    def __init__(self, clock: Clock, claim_ttl: float, ledger_ttl: float) -> None:
        self._clock = clock
        self._claim_ttl = claim_ttl
        self._ledger_ttl = ledger_ttl
        self._entries: dict[str, _Entry] = {}

    def _get(self, command_id: str) -> _Entry | None:
        entry = self._entries.get(command_id)
        if entry is not None and entry.expires <= self._clock.now():
            del self._entries[command_id]
            return None
        return entry

    def _put(
        self, command_id: str, state: Literal["c", "s", "f"], owner: str, ttl: float
    ) -> _Entry:
        now = self._clock.now()
        entry = _Entry(state, owner, now, now + ttl)
        self._entries[command_id] = entry
        return entry

    async def claim(self, command_id: str, owner: str) -> ClaimState:
        entry = self._get(command_id)
        now = self._clock.now()
        if entry is None:
            self._put(command_id, "c", owner, self._claim_ttl)
            return Claimed()
        if entry.state == "c":
            if entry.owner == owner:
                entry.expires = now + self._claim_ttl
                return Claimed()
            return Busy(entry.expires - now)
        if entry.state == "s":
            return Sending(now - entry.since, entry.owner)
        return Finished(entry.result, entry.published)

    async def mark_sending(self, command_id: str, owner: str) -> bool:
        entry = self._get(command_id)
        if entry is None or (entry.state == "c" and entry.owner == owner):
            self._put(command_id, "s", owner, self._ledger_ttl)
            return True
        return False

    async def unsend(self, command_id: str, owner: str) -> bool:
        entry = self._get(command_id)
        if entry is not None and entry.state == "s" and entry.owner == owner:
            self._put(command_id, "c", owner, self._claim_ttl)
            return True
        return False

    async def release(self, command_id: str, owner: str) -> bool:
        entry = self._get(command_id)
        if entry is not None and entry.state == "c" and entry.owner == owner:
            del self._entries[command_id]
            return True
        return False

    async def finish(self, command_id: str, owner: str, result: bytes) -> FinishOutcome:
        entry = self._get(command_id)
        if entry is None or (entry.state in ("c", "s") and entry.owner == owner):
            self._put(command_id, "f", owner, self._ledger_ttl).result = result
            return "ok"
        if entry.state == "f":
            return Finished(entry.result, entry.published)
        return "lost"

    async def take_over(self, command_id: str, owner: str, min_age: float, result: bytes) -> bool:
        entry = self._get(command_id)
        if entry is None or entry.state != "s" or self._clock.now() - entry.since < min_age:
            return False
        self._put(command_id, "f", owner, self._ledger_ttl).result = result
        return True

    async def mark_published(self, command_id: str) -> None:
        entry = self._get(command_id)
        if entry is not None and entry.state == "f":
            entry.published = True
