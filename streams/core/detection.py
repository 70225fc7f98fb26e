"""The detection core (BRIEF §3): event-time activity periods per session, one partition's worth.

Pure: no Faust, Kafka, clock or I/O. ``Detector.on_event`` takes one validated event and
``Detector.advance`` takes a watermark; both return the abandonments whose periods closed, in a
deterministic order (by deadline, then session id). The Faust worker and ``cartpulse detect``
drive the same class, so a replay through Kafka and an offline run agree.

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

import heapq
from bisect import insort
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from decimal import Decimal

from streams.core.session import CartLine, SessionState
from streams.models.abandonment import (
    Abandonment,
    CartItem,
    Kind,
    ViewedProduct,
    abandonment_id,
)
from streams.models.events import Event

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
MAX_VIEWED_KEPT = 50  # distinct products remembered per period (10 are reported)
MAX_VIEWED_REPORTED = 10
_ZERO = Decimal(0)


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


@dataclass(slots=True)
class Counters:
    """Monotonic counts since the detector was created; the shell turns them into metrics."""

    applied: int = 0
    duplicates: int = 0
    late: int = 0
    buffered: int = 0
    late_into_closed: int = 0
    evicted: int = 0


class Detector:
    """The detection state of one partition: sessions, the deadline index and the watermark.

    ``sessions`` may be any mutable mapping (a plain dict offline; the worker's cache).
    With ``auto_watermark`` (one input, as offline) each event moves the watermark to
    ``max event time - lateness``; without it only ``advance`` does, so a shell merging several
    inputs can hold the watermark at the slowest of them.
    With ``track_changes``, ``dirty`` collects the ids of sessions changed since the caller
    last cleared it, and ``deleted`` those forgotten, so a shell can persist exactly what
    changed; a run that persists nothing (offline) leaves it off.
    """

    def __init__(
        self,
        config: DetectorConfig,
        sessions: MutableMapping[str, SessionState] | None = None,
        watermark: int | None = None,
        max_event_ms: int | None = None,
        auto_watermark: bool = True,
        track_changes: bool = True,
    ) -> None:
        self.config = config
        self.auto_watermark = auto_watermark
        self.sessions: MutableMapping[str, SessionState] = {} if sessions is None else sessions
        self.watermark = watermark
        self.max_event_ms = max_event_ms
        self.counters = Counters()
        self.track_changes = track_changes
        self.dirty: set[str] = set()
        self.deleted: set[str] = set()
        self._index: list[tuple[int, str]] = []
        self._seq = 0
        self._gap = config.gap_ms
        self._lateness = config.lateness_ms
        self._retention = config.dedup_window_ms
        for state in self.sessions.values():
            state.index_due = None
            self._reindex(state)

    # -- inputs ------------------------------------------------------------------------

    def on_event(self, event: Event) -> list[Abandonment]:
        """Take one event; returns the abandonments this closes (usually none)."""
        sid = event.session_id
        state = self.sessions.get(sid)
        if state is None:
            state = self.sessions[sid] = SessionState(sid)
            if self.track_changes:
                self.deleted.discard(sid)
        t = event.occurred_at
        seen = state.seen
        if event.event_id in seen:
            self.counters.duplicates += 1
            return []
        seen[event.event_id] = t
        if self.track_changes:
            self.dirty.add(sid)

        closed: list[Abandonment] = []
        max_ms = self.max_event_ms
        if max_ms is None or t > max_ms:
            self.max_event_ms = max_ms = t
        watermark = self.watermark
        if watermark is not None and t < watermark:
            self.counters.late += 1
            self._apply(state, event, t, closed)
        else:
            if self.auto_watermark:
                candidate = max_ms - self._lateness
                if watermark is None or candidate > watermark:
                    self.watermark = watermark = candidate
            if watermark is not None and t <= watermark and not state.pending:
                self._apply(state, event, t, closed)
            else:
                self.counters.buffered += 1
                self._seq += 1
                insort(state.pending, (t, self._seq, event), key=_pending_key)
        # ``_reindex`` inlined for the common cases: it runs for every event (0.15 µs of ~1.9).
        if state.pending:
            due = self._due(state)
        elif state.last_ms is not None:
            due = state.last_ms + self._gap
        else:
            due = state.last_seen_ms + self._retention
        if state.index_due is None or due < state.index_due:
            state.index_due = due
            heapq.heappush(self._index, (due, sid))
        if watermark is not None:
            index = self._index
            if index and index[0][0] <= watermark:
                self._drain(watermark, closed)
        return closed

    def advance(self, watermark: int) -> list[Abandonment]:
        """Move the watermark forward (never back); returns the periods that closed."""
        if self.watermark is not None and watermark <= self.watermark:
            return []
        self.watermark = watermark
        closed: list[Abandonment] = []
        self._drain(watermark, closed)
        return closed

    def _drain(self, watermark: int, closed: list[Abandonment]) -> None:
        """Settle every session whose due time the watermark has reached, earliest first."""
        index = self._index
        while index and index[0][0] <= watermark:
            due, sid = heapq.heappop(index)
            state = self.sessions.get(sid)
            if state is None or state.index_due != due:
                continue  # stale entry: the session moved on or was forgotten
            state.index_due = None
            self._settle(state, watermark, closed)

    def flush(self) -> Iterator[Abandonment]:
        """Close every open period as if the input had ended (``detect --flush``).

        Lazily, session by session in due order, so a caller can write each abandonment while
        it is still in the CPU's cache; consume the iterator to the end.
        """
        sessions = self.sessions
        order = sorted((self._due(state), sid) for sid, state in sessions.items())
        for _, sid in order:
            state = sessions[sid]
            closed: list[Abandonment] = []
            while state.pending:
                t, _, event = state.pending.pop(0)
                self._apply(state, event, t, closed)
            if state.last_ms is not None:
                self._close(state, closed)
                if self.track_changes:
                    self.dirty.add(sid)
            yield from closed

    # -- the rules ---------------------------------------------------------------------

    def _settle(self, state: SessionState, watermark: int, closed: list[Abandonment]) -> None:
        """Apply the session's pending events up to ``watermark``, close it if due, re-index."""
        sid = state.session_id
        pending = state.pending
        while pending and pending[0][0] <= watermark:
            t, _, event = pending.pop(0)
            self._apply(state, event, t, closed)
        last = state.last_ms
        if last is not None and last + self._gap <= watermark:
            self._close(state, closed)
        if self.track_changes:
            self.dirty.add(sid)
        if (
            state.last_ms is None
            and not pending
            and state.last_seen_ms + self._retention <= watermark
        ):
            del self.sessions[sid]
            if self.track_changes:
                self.dirty.discard(sid)
                self.deleted.add(sid)
            self.counters.evicted += 1
            return
        self._reindex(state)

    def _apply(
        self,
        state: SessionState,
        event: Event,
        t: int,
        closed: list[Abandonment],
    ) -> None:
        self.counters.applied += 1
        last = state.last_ms
        if last is not None and t >= last + self._gap:
            self._close(state, closed)
            last = None
        if t > state.last_seen_ms:
            state.last_seen_ms = t
        if event.customer_id is not None:
            state.customer_id = event.customer_id
        if event.store_id is not None:
            state.store_id = event.store_id
        in_period = True
        if last is None:
            if state.closed_deadline is not None and t < state.closed_deadline:
                self.counters.late_into_closed += 1
                in_period = False  # belongs to a closed period: the cart changes, nothing else
            else:
                state.last_ms = t
                state.ordered = state.checkout = False
                state.views = 0
                if state.viewed:  # the closed period's products went to its abandonment
                    state.viewed = {}
        elif t > last:
            state.last_ms = t

        etype = event.type
        product = event.product
        if etype == "product_viewed":
            if in_period and product is not None:
                state.views += 1
                viewed = state.viewed
                pid = product.id
                item = viewed.pop(pid, None)  # re-inserted last: most recent at the end
                if item is None:
                    if len(viewed) >= MAX_VIEWED_KEPT:
                        del viewed[next(iter(viewed))]
                    item = ViewedProduct(
                        pid, 1, product.price, product.name or None, product.url or None
                    )
                else:
                    item.views += 1
                    if product.price is not None:
                        item.price = product.price
                    if product.name:
                        item.name = product.name
                    if product.url:
                        item.url = product.url
                viewed[pid] = item
        elif etype == "cart_item_added":
            if product is not None:
                line = state.cart.get(product.id)
                if line is None:
                    line = state.cart[product.id] = CartLine(product.id, 0)
                line.quantity += event.quantity
                if product.price is not None:
                    line.price = product.price
                    line.currency = product.currency or line.currency
                line.name = product.name or line.name
                line.url = product.url or line.url
                line.image_url = product.image_url or line.image_url
            if event.cart is not None and event.cart.url:
                state.cart_url = event.cart.url
        elif etype == "cart_item_removed":
            if product is not None:
                line = state.cart.get(product.id)
                if line is not None:  # a remove of an unknown product is ignored
                    line.quantity -= event.quantity
                    if line.quantity <= 0:
                        del state.cart[product.id]
        elif etype == "order_completed":
            state.cart.clear()
            if in_period:
                state.ordered = True
        elif etype == "checkout_started":
            if in_period:
                state.checkout = True
            if event.cart is not None and event.cart.url:
                state.cart_url = event.cart.url

    def _close(self, state: SessionState, closed: list[Abandonment]) -> None:
        last = state.last_ms
        assert last is not None  # noqa: S101 - only called with an open period
        deadline = last + self._gap
        state.last_ms = None
        state.closed_deadline = deadline
        kind: Kind | None = None
        if state.ordered:
            kind = None
        elif state.cart:
            kind = "cart"
        elif state.views >= self.config.min_product_views:
            kind = "browse"
        if kind is not None:
            closed.append(self._abandonment(state, kind, last, deadline))
        # Forget event ids that left the dedup window.
        horizon = deadline - self._retention
        seen = state.seen
        if len(seen) > 64:
            state.seen = {eid: t for eid, t in seen.items() if t >= horizon}

    def _abandonment(
        self, state: SessionState, kind: Kind, last: int, deadline: int
    ) -> Abandonment:
        items: list[CartItem] = []
        value: Decimal | None = None
        currency: str | None = None
        for line in state.cart.values():
            items.append(
                CartItem(
                    line.product_id, line.quantity, line.price, line.name, line.url, line.image_url
                )
            )
            if line.price is not None:
                value = (value or _ZERO) + line.price * line.quantity
            currency = currency or line.currency
        # The period's own objects: a new period starts a new ``viewed``, so these stay as they are.
        viewed = tuple(reversed(list(state.viewed.values())[-MAX_VIEWED_REPORTED:]))
        return Abandonment(
            abandonment_id(state.session_id, kind, deadline),
            kind,
            state.session_id,
            state.customer_id,
            state.store_id or self.config.default_store_id,
            last,
            deadline,
            state.checkout,
            tuple(items),
            value,
            currency,
            state.cart_url,
            viewed,
        )

    # -- the deadline index ------------------------------------------------------------

    def _due(self, state: SessionState) -> int:
        """When this session next needs the detector's attention (event time)."""
        if state.pending:
            due = state.pending[0][0]
            if state.last_ms is not None:
                due = min(due, state.last_ms + self._gap)
            return due
        if state.last_ms is not None:
            return state.last_ms + self._gap
        return state.last_seen_ms + self._retention

    def _reindex(self, state: SessionState) -> None:
        due = self._due(state)
        if state.index_due is None or due < state.index_due:
            state.index_due = due
            heapq.heappush(self._index, (due, state.session_id))

    def open_sessions(self) -> int:
        return sum(1 for s in self.sessions.values() if s.last_ms is not None)


def _pending_key(item: tuple[int, int, Event]) -> tuple[int, int]:
    return (item[0], item[1])
