"""How fast the importer produces: at once, N events/s, or the original spacing X times faster.

Pure: ``Pacer.delay(now, event_ms)`` returns how long to wait before the next event; the
caller owns the clock and the sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.contract.errors import ConfigurationError


@dataclass(slots=True)
class Pacer:
    rate: float | None = None  # events per second
    speedup: float | None = None  # replay the events' own spacing this many times faster
    _start: float | None = field(default=None, init=False)
    _first_event_ms: int | None = field(default=None, init=False)
    _count: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.rate is not None and self.speedup is not None:
            raise ConfigurationError("give --rate or --speedup, not both")
        if self.rate is not None and not self.rate > 0:
            raise ConfigurationError("--rate must be > 0 events per second")
        if self.speedup is not None and not self.speedup > 0:
            raise ConfigurationError("--speedup must be > 0")

    def delay(self, now: float, event_ms: int) -> float:
        """Seconds to wait (0 or more) before sending the event with time ``event_ms``."""
        if self._start is None:
            self._start, self._first_event_ms = now, event_ms
        self._count += 1
        assert self._first_event_ms is not None  # noqa: S101 - set together with _start
        if self.rate is not None:
            due = self._start + (self._count - 1) / self.rate
        elif self.speedup is not None:
            # Files are not always sorted: an event earlier than the first is sent at once.
            due = self._start + max(0, event_ms - self._first_event_ms) / 1000 / self.speedup
        else:
            return 0.0
        return max(0.0, due - now)
