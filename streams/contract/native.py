"""The one face of the native core (``streams._native``, built from native/src/ on install).

Every other module of the package reaches the Rust core through this one, by named, typed
values: ``Closed`` for an abandonment a period closed, ``Counters`` for the core's counts,
``Changes`` for the sessions to persist, and ``Core``, one partition's detector. The reader
(``read``, ``read_json``, ``canonical``, the ``field_*`` rules, ``event_time``) and the time
range (``MIN_EVENT_MS``, ``MAX_EVENT_MS``, ``TIME_RANGE``) are the extension's own functions and
constants, typed by streams/_native.pyi. The layers test (tests/unit/test_layers.py) keeps
every other module of the package away from ``streams._native``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, NamedTuple

from streams import _native
from streams._native import Record, Refused
from streams.contract.abandonment import Kind

__all__ = [
    "EVENT_TYPES",
    "MAX_EVENT_MS",
    "MAX_ID_CHARS",
    "MAX_RECORD_BYTES",
    "MIN_EVENT_MS",
    "TIME_RANGE",
    "Changes",
    "Closed",
    "Core",
    "Counters",
    "Record",
    "Refused",
    "canonical",
    "event_time",
    "field_amount",
    "field_currency",
    "field_id",
    "field_time",
    "format_time",
    "read",
    "read_json",
]

# Epoch milliseconds accepted as event time (native/src/text.rs), and the reason given for a
# time outside them.
MIN_EVENT_MS: Final[int] = _native.MIN_EVENT_MS
MAX_EVENT_MS: Final[int] = _native.MAX_EVENT_MS
TIME_RANGE: Final[str] = _native.TIME_RANGE
# The contract's event types (in its order), the record size limit and the id length limit.
EVENT_TYPES: Final[tuple[str, ...]] = _native.EVENT_TYPES
MAX_RECORD_BYTES: Final[int] = _native.MAX_RECORD_BYTES
MAX_ID_CHARS: Final[int] = _native.MAX_ID_CHARS

# The contract's reader (native/src/py_read.rs): a record gives a Record or Refused, its event
# as JSON or Refused; a field gives its value or raises ValueError(reason).
read: Final = _native.read
read_json: Final = _native.read_json
canonical: Final = _native.canonical
field_time: Final = _native.field_time
field_amount: Final = _native.field_amount
field_currency: Final = _native.field_currency
field_id: Final = _native.field_id
event_time: Final = _native.event_time
# Epoch milliseconds → the contract's RFC 3339 text: the one writer of times.
format_time: Final = _native.format_time


class Closed(NamedTuple):
    """A closed period's abandonment: what the topic needs, and the record itself as JSON."""

    kind: Kind
    key: str  # the record key: the customer when known, else the session
    detected_at: int  # epoch ms: the period's deadline
    json: bytes


@dataclass(frozen=True, slots=True)
class Counters:
    """Monotonic counts since the core was created; a shell turns them into metrics."""

    applied: int = 0
    duplicates: int = 0
    late: int = 0
    buffered: int = 0
    late_into_closed: int = 0
    evicted: int = 0


class Changes(NamedTuple):
    """The sessions changed since the last ``take_changes`` (id, saved state), and the ids of
    those forgotten."""

    changed: list[tuple[str, bytes]]
    forgotten: list[str]


class Core:
    """One partition's detector (native/src/sessions.rs, rules.rs), with typed results.

    The arguments are ``DetectorConfig``'s (streams/core/detection.py), which checks them.
    ``restore`` raises ``ValueError`` for a saved state it cannot read; nothing else raises.
    """

    __slots__ = ("_core",)

    def __init__(
        self,
        gap_ms: int,
        min_product_views: int,
        lateness_ms: int,
        dedup_window_ms: int,
        default_store_id: str,
        watermark: int | None = None,
        max_event_ms: int | None = None,
        auto_watermark: bool = True,
        track_changes: bool = True,
    ) -> None:
        self._core = _native.Core(
            gap_ms,
            min_product_views,
            lateness_ms,
            dedup_window_ms,
            default_store_id,
            watermark,
            max_event_ms,
            auto_watermark,
            track_changes,
        )

    def restore(self, raw: bytes) -> None:
        """Add one saved session; ``ValueError`` for a value it cannot read."""
        self._core.restore(raw)

    def restore_many(self, raws: list[bytes]) -> list[tuple[int, str]]:
        """Add saved sessions, in order, without holding the interpreter's lock (so another
        thread runs meanwhile; a detector is used by one thread at a time). Returns the index
        and the reason of each value it could not read (skipped)."""
        return self._core.restore_many(raws)

    def take(self, record: Record) -> tuple[bool, list[Closed]]:
        """False if the event's id was seen before (dropped), and the abandonments it closed."""
        fresh, closed = self._core.on_event(record)
        # closed is empty for nearly every event: no list to build then
        return fresh, [Closed._make(c) for c in closed] if closed else []

    def advance(self, watermark: int) -> list[Closed]:
        """Move the watermark forward (never back); returns the periods that closed."""
        return [Closed._make(c) for c in self._core.advance(watermark)]

    def flush(self) -> list[Closed]:
        """Close every open period as if the input had ended (``detect --flush``)."""
        return [Closed._make(c) for c in self._core.flush()]

    def run_jsonl(
        self,
        path: str,
        write: Callable[[bytes], object],
        refused: Callable[[bytes, int, str, bool], object],
        flush: bool,
    ) -> tuple[int, int, int]:
        """A whole JSONL file through the reader and the core, abandonments written as JSON
        lines in chunks (``write``). A line the reader refuses goes to ``refused(line, lineno,
        reason, unknown_type)``, which counts and reports it. Returns the events taken and the
        cart and browse abandonments written."""
        return self._core.run_jsonl(path, write, refused, flush)

    @property
    def watermark(self) -> int | None:
        return self._core.watermark

    @property
    def max_event_ms(self) -> int | None:
        return self._core.max_event_ms

    @property
    def counters(self) -> Counters:
        return Counters(*self._core.counters())

    def __len__(self) -> int:
        """Sessions held (open or waiting to be forgotten)."""
        return len(self._core)

    def __contains__(self, session_id: str) -> bool:
        return session_id in self._core

    def open_sessions(self) -> int:
        return self._core.open_sessions()

    def state(self, session_id: str) -> bytes | None:
        """A session's saved state (the sessions table's value), None if not held."""
        return self._core.state(session_id)

    def session_ids(self) -> list[str]:
        return self._core.session_ids()

    def customer_sessions(self) -> list[tuple[str, str]]:
        """(customer id, session id) of every session that names a customer: its own, or one of
        its pending events' (one pair per customer and session)."""
        return self._core.customer_sessions()

    def forget(self, session_ids: list[str]) -> int:
        """Drop these sessions whole (an erasure): cart, views, pending events and seen event
        ids. ``take_changes`` then reports them as forgotten. Returns how many were held."""
        return self._core.forget(session_ids)

    def take_changes(self) -> Changes:
        """The sessions changed and forgotten since the last call (with change tracking on);
        clears both."""
        return Changes._make(self._core.take_changes())
