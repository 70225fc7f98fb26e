"""Log lines at a bounded rate: what a flood of hostile connections must not turn into a flood
of logs.

``LogBudget`` (pure) admits one line per kind of event per ``interval`` and counts the rest;
the next admitted line reports how many were left out. ``ThrottledLog`` writes through it.
Kinds are a closed set chosen by the caller, so the budget's memory is bounded too.
"""

from __future__ import annotations

import logging
from typing import Final

from senders.core.clock import Clock

LOG_INTERVAL: Final = 60.0  # seconds: at most one line per kind per minute


class LogBudget:
    """One line per kind per ``interval`` seconds; the caller passes the time."""

    def __init__(self, interval: float = LOG_INTERVAL) -> None:
        self._interval = interval
        self._quiet_until: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def admit(self, kind: str, now: float) -> int | None:
        """None when this event must not be logged (it is counted); else log it, and the value
        is how many events of ``kind`` were left out since the last line."""
        if now < self._quiet_until.get(kind, float("-inf")):
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return None
        self._quiet_until[kind] = now + self._interval
        return self._suppressed.pop(kind, 0)


class ThrottledLog:
    """A logger that writes each kind of event at most once per interval."""

    def __init__(
        self, logger: logging.Logger, clock: Clock, interval: float = LOG_INTERVAL
    ) -> None:
        self._logger = logger
        self._clock = clock
        self._budget = LogBudget(interval)
        self._interval = interval

    def log(self, level: int, kind: str, message: str, *args: object) -> None:
        """``message % args`` under ``kind``, unless a line of that kind was written lately."""
        suppressed = self._budget.admit(kind, self._clock.now())
        if suppressed is None:
            return
        if suppressed:
            message += " (and %d more like it in the last %g s, not logged)"
            args = (*args, suppressed, self._interval)
        self._logger.log(level, message, *args)
