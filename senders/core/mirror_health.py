"""Whether the consent mirror the senders read is keeping up (pure).

``cartpulse consents mirror`` keeps a heartbeat in Redis (``Keys.mirror_heartbeat``): per
partition of ``consents``, the last time it had applied every record up to that partition's
end. A sender judges the mirror from it:

* ``mirror_age``: seconds since the mirror was last caught up on *every* partition, so a
  stuck replica is seen even while another one keeps beating; infinite when a partition has
  no heartbeat (no mirror ever ran under this key prefix, or one never caught up).
* ``MirrorHealth``: the mirror is *stale* while that age is above ``stale_after``; ``observe``
  returns a ``MirrorReport`` for the first stale observation, then at most once per
  ``report_every`` seconds while it lasts, and once when the mirror is fresh again (one log
  line, not one per poll).

Sends go on while the mirror is stale: the send-time consent check reads what Redis has, and
an opt-out is never lost (the webhooks write it to Redis themselves). The sender reports
not-ready instead (docs/operations.md, CartpulseConsentMirrorStale).

Times are seconds given by the caller; nothing here reads a clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


def mirror_age(beats: Mapping[int, float], partitions: int, now: float) -> float:
    """Seconds since every one of ``partitions`` (0 .. partitions-1) was last caught up.

    ``inf`` when one has no heartbeat or the partition count is unknown (``partitions < 1``);
    never negative (a mirror host's clock may run a little ahead)."""
    if partitions < 1:
        return math.inf
    times = [beats.get(partition) for partition in range(partitions)]
    oldest = min((t for t in times if t is not None), default=None)
    if oldest is None or None in times:
        return math.inf
    return max(0.0, now - oldest)


@dataclass(frozen=True, slots=True)
class MirrorReport:
    """What to log: the mirror is stale (``age`` seconds, ``inf`` when absent) or fresh again."""

    stale: bool
    age: float

    @property
    def absent(self) -> bool:
        return math.isinf(self.age)


@dataclass(slots=True)
class MirrorHealth:
    stale_after: float
    report_every: float = 60.0
    age: float = math.inf  # until the first observation: not known to be fresh
    _reported_at: float | None = None  # of the last stale report, None when fresh

    @property
    def stale(self) -> bool:
        return self.age > self.stale_after

    def observe(self, age: float, now: float) -> MirrorReport | None:
        """Record the mirror's age at ``now``; returns a report when one is due."""
        self.age = age
        if self.stale:
            if self._reported_at is None or now - self._reported_at >= self.report_every:
                self._reported_at = now
                return MirrorReport(stale=True, age=age)
            return None
        if self._reported_at is not None:
            self._reported_at = None
            return MirrorReport(stale=False, age=age)
        return None
