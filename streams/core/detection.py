"""The detection core: event-time activity periods per session, one partition's worth.

The rules run in Rust (native/src/sessions.rs and rules.rs), reached through
``streams.contract.native``; this module holds their configuration and the typed detector.
Pure: no Faust, Kafka, clock or I/O. ``Detector.on_event`` takes one validated event and
``Detector.advance`` a watermark; both return the abandonments whose periods closed, in a
deterministic order (by deadline, then session id), each already in its JSON form
(docs/semantics.md). The Faust worker and ``cartpulse detect`` drive the same core, so a
replay through Kafka and an offline run agree.

Semantics, precisely:

* A period ends at its deadline ``d = last_event_time + gap``; an event at ``t >= d`` starts a
  new period after the old one is closed.
* Events are applied in event-time order: one ahead of the watermark waits in the session's
  ``pending`` list until the watermark passes it, so any arrival order within the allowed
  lateness gives the same result. Ties keep arrival order.
* ``watermark = max event time seen - lateness`` (``advance`` may push it further, e.g. from the
  wall clock in live mode). An event with ``t < watermark`` on arrival is late: it is applied at
  once and counted; if it falls inside a period that is already closed it only updates the
  cart, it never re-opens or retracts that period.
* A period is closed when the watermark reaches its deadline: an ``order_completed`` in it →
  nothing; else a non-empty cart → ``cart``; else ``>= min_product_views`` product views →
  ``browse``; else nothing.
* A session with no open period is forgotten ``retention`` after its last event (its cart too).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from streams.contract.errors import InvalidRecord
from streams.contract.event_parse import record_of
from streams.contract.events import Event
from streams.contract.native import Changes, Closed, Core, Counters, Record

__all__ = ["HOUR_MS", "MINUTE_MS", "Changes", "Closed", "Counters", "Detector", "DetectorConfig"]

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    gap_ms: int = 30 * MINUTE_MS
    min_product_views: int = 1
    lateness_ms: int = 0
    dedup_window_ms: int = 24 * HOUR_MS
    default_store_id: str = "default"

    def __post_init__(self) -> None:
        if self.gap_ms <= 0:
            raise ValueError("gap must be > 0")
        if self.min_product_views < 1:
            raise ValueError("min_product_views must be >= 1")
        if self.lateness_ms < 0:
            raise ValueError("lateness must be >= 0")
        if self.dedup_window_ms < self.gap_ms:
            raise ValueError("the dedup window must be at least the gap")


class Detector(Core):
    """The detection state of one partition: sessions, the deadline index and the watermark
    (the native core, ``streams.contract.native.Core``, configured by ``DetectorConfig``).

    ``states`` are saved sessions (``state``/``take_changes`` give them) to start from.
    With ``auto_watermark`` (one input, as offline) each event moves the watermark to
    ``max event time - lateness``; without it only ``advance`` does, so a shell merging several
    inputs can hold the watermark at the slowest of them.
    With ``track_changes``, ``take_changes`` returns the sessions changed and forgotten since
    it was last called, so a shell can persist exactly what changed; a run that persists
    nothing (offline) leaves it off.
    """

    __slots__ = ("config",)

    def __init__(
        self,
        config: DetectorConfig,
        states: Iterable[bytes] = (),
        watermark: int | None = None,
        max_event_ms: int | None = None,
        auto_watermark: bool = True,
        track_changes: bool = True,
    ) -> None:
        super().__init__(
            config.gap_ms,
            config.min_product_views,
            config.lateness_ms,
            config.dedup_window_ms,
            config.default_store_id,
            watermark,
            max_event_ms,
            auto_watermark,
            track_changes,
        )
        self.config = config
        for raw in states:
            self.restore(raw)

    def restore(self, raw: bytes) -> None:
        """Add one saved session; ``InvalidRecord`` for a value that cannot be read."""
        try:
            super().restore(raw)
        except (ValueError, TypeError) as exc:
            raise InvalidRecord(str(exc)) from None

    def take(self, event: Event | Record) -> tuple[bool, list[Closed]]:
        """Take one event: False if its event_id was seen before (dropped), and what it closed.

        The core takes the ``Record`` ``read_record`` gave; a Python ``Event`` (a REES46 line's,
        a test's) goes through the reader first (``record_of``; ``InvalidRecord`` if it breaks
        the contract).
        """
        # type(), not isinstance: the worker's hot path; mypy narrows only the if-branch of it
        record = event if type(event) is Record else record_of(event)  # type: ignore[arg-type]
        return super().take(record)

    def on_event(self, event: Event | Record) -> list[Closed]:
        """Take one event; returns the abandonments this closes (usually none)."""
        return self.take(event)[1]
