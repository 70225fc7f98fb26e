"""The consent mirror's heartbeat in Redis, written by the mirror and watched by the senders.

``<key prefix>mirror:heartbeat`` is a hash: partition of ``consents`` → the last time (epoch
seconds, the mirror host's clock) the mirror had applied that partition up to its end. The
mirror refreshes it every ``BEAT_INTERVAL`` seconds while caught up, and checks every
``CATCH_UP_INTERVAL`` seconds while behind (``senders.runtime.mirror``); a partition it falls behind
on keeps its old time, so its age grows. The key has no TTL: an old time says more than a
missing key (how long ago the mirror stopped).

``MirrorWatch`` reads it in a sender every ``BEAT_INTERVAL`` seconds (``CATCH_UP_INTERVAL``
while the mirror is stale) and applies the pure rule of ``mirror_health``: it sets the age
gauge, logs per ``MirrorHealth``, and answers ``ready``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Mapping

from prometheus_client import Gauge
from redis.asyncio import Redis

from senders.adapters.errors import INFRA_ERRORS
from senders.core.clock import Clock
from senders.core.keys import Keys
from senders.core.mirror_health import MirrorHealth, mirror_age

log = logging.getLogger(__name__)

BEAT_INTERVAL = 2.0
CATCH_UP_INTERVAL = 0.5  # how often while behind: the mirror checks, a stale sender looks


class MirrorHeartbeat:
    """Reads and writes the heartbeat hash; Redis errors reach the caller."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._key = keys.mirror_heartbeat()

    async def beat(self, caught_up: Mapping[int, float]) -> None:
        """Record that each partition in ``caught_up`` was caught up at its time."""
        if caught_up:
            mapping = {str(p): repr(t) for p, t in caught_up.items()}
            await self._redis.hset(self._key, mapping=mapping)  # type: ignore[misc]  # redis-py types hset as Awaitable | int

    async def read(self) -> dict[int, float]:
        """Every partition's last caught-up time; fields that do not parse are left out."""
        raw: dict[bytes, bytes] = await self._redis.hgetall(self._key)  # type: ignore[misc]  # as hset
        beats: dict[int, float] = {}
        for field, value in raw.items():
            with contextlib.suppress(ValueError):
                beats[int(field)] = float(value)
        return beats


class MirrorWatch:
    """A sender's view of the consent mirror of its key prefix (see the module docstring)."""

    def __init__(
        self,
        heartbeat: MirrorHeartbeat,
        health: MirrorHealth,
        partitions: int,
        gauge: Gauge,
        clock: Clock,
    ) -> None:
        self._heartbeat = heartbeat
        self._health = health
        self._partitions = partitions
        self._gauge = gauge
        self._clock = clock
        self._gauge.set(math.inf)

    @property
    def ready(self) -> bool:
        return not self._health.stale

    async def run(self, stop: asyncio.Event) -> None:
        """Check now, then every ``BEAT_INTERVAL`` seconds (``CATCH_UP_INTERVAL`` while the
        mirror is stale) until ``stop`` is set."""
        while not stop.is_set():
            await self.check()
            interval = CATCH_UP_INTERVAL if self._health.stale else BEAT_INTERVAL
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    async def check(self) -> None:
        """Read the heartbeat once; a Redis error leaves the last judgement as it was (the
        commands report Redis trouble themselves)."""
        try:
            beats = await self._heartbeat.read()
        except INFRA_ERRORS as exc:
            log.debug("consent mirror heartbeat not read: %s", exc)
            return
        now = self._clock.now()
        age = mirror_age(beats, self._partitions, now)
        self._gauge.set(age)
        report = self._health.observe(age, now)
        if report is None:
            return
        if not report.stale:
            log.info("consent mirror caught up again (%.0f s ago); sender ready", report.age)
        elif report.absent:
            log.warning(
                "no consent mirror heartbeat: is `cartpulse consents mirror` running with this "
                "Redis key prefix? Sends go on against what Redis holds (SMS without a "
                "mirrored opt-in end no_consent); not ready until it catches up"
            )
        else:
            log.warning(
                "consent mirror last caught up %.0f s ago (limit %.0f s): consents newer than "
                "that are not applied yet; sends go on, not ready until it catches up",
                report.age,
                self._health.stale_after,
            )
