"""Whether a channel's provider can take requests, judged from its answers (pure).

A provider is *unavailable* after an answer that says the fault is ours or the provider's,
not the message's: credentials refused (Twilio 401 / 20003, SMTP 535), the provider not
reachable (connection refused, a login that times out), or a provider error (5xx). It is
available again after any answer that a working provider gives (sent, or a refusal of one
message). While it is unavailable:

* ``admit`` lets one request through (a probe) after a back-off that grows with each fault
  and makes the others wait, so a queue of commands does not run into the outage;
* ``fault`` returns a ``Report`` for the first fault and then at most once per
  ``report_every`` seconds, with the count since the last one (one log line, not one per
  command).

Times are seconds given by the caller; nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from senders.core.outcomes import backoff


@dataclass(frozen=True, slots=True)
class Report:
    """What to log: ``count`` faults (or recovered after them) since ``since``."""

    reason: str
    code: str | None
    count: int
    since: float


@dataclass(slots=True)
class ProviderHealth:
    base: float  # back-off of the probes, as for one command's retries
    cap: float
    probe_hold: float  # how long the others wait for a probe's answer
    report_every: float = 60.0
    reason: str | None = None  # the current fault, None when available
    code: str | None = None  # its last error code
    since: float = 0.0
    failures: int = 0  # faults in a row
    blocked_until: float = 0.0
    _unreported: int = 0
    _reported_at: float = 0.0

    @property
    def down(self) -> bool:
        return self.reason is not None

    def admit(self, now: float) -> float:
        """Seconds to wait before a request may go; 0 means go (and, while down, probe)."""
        if not self.down:
            return 0.0
        if now < self.blocked_until:
            return self.blocked_until - now
        self.blocked_until = now + self.probe_hold
        return 0.0

    def wait(self, now: float) -> float:
        """Seconds until the next probe may go (0 when available); takes no probe."""
        return max(0.0, self.blocked_until - now) if self.down else 0.0

    def fault(
        self, reason: str, code: str | None, now: float, rand: float | None = None
    ) -> Report | None:
        """Record a fault; returns a report when one is due."""
        if not self.down:
            self.since, self._reported_at, self._unreported = now, now - self.report_every, 0
        self.reason, self.code = reason, code
        self.failures += 1
        self.blocked_until = now + backoff(self.failures, self.base, self.cap, rand)
        self._unreported += 1
        if now - self._reported_at < self.report_every:
            return None
        report = Report(reason, code, self._unreported, self.since)
        self._reported_at, self._unreported = now, 0
        return report

    def recovered(self, now: float) -> Report | None:
        """The provider answered as a working one; returns a report if it was down."""
        if self.reason is None:
            return None
        report = Report(self.reason, self.code, self.failures, self.since)
        self.reason, self.code, self.failures = None, None, 0
        self.blocked_until, self._unreported = 0.0, 0
        return report
