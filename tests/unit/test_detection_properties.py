"""The incremental detector against a plain batch reference written separately, here.

The reference sees the whole input at once: it drops repeated event ids, sorts each session's
events by time, cuts periods at gaps, carries the cart across them and classifies each period
that the final watermark (or the flush) closes. Any arrival order within the allowed lateness
must give the incremental core exactly the same abandonments.
"""

from __future__ import annotations

import random
from collections import defaultdict
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.contract.events import Event, EventType, Product
from streams.core.detection import Detector, DetectorConfig
from tests.support.abandonments import records

T0 = 1_569_888_000_000
STEP = 5 * 60_000  # a coarse grid so that events land exactly on deadlines too
GAP = 30 * 60_000


def reference(
    events: list[Event], gap: int, min_views: int, lateness: int, flush: bool
) -> set[tuple[str, str, int, int, tuple[tuple[str, int], ...], tuple[str, ...]]]:
    unique: dict[str, Event] = {}
    for event in events:
        unique.setdefault(event.event_id, event)
    by_session: dict[str, list[Event]] = defaultdict(list)
    for event in unique.values():
        by_session[event.session_id].append(event)
    watermark = max(e.occurred_at for e in events) - lateness
    found = set()
    for sid, session in by_session.items():
        session.sort(key=lambda e: e.occurred_at)
        cart: dict[str, int] = {}
        periods: list[list[Event]] = []
        for event in session:
            if not periods or event.occurred_at >= periods[-1][-1].occurred_at + gap:
                periods.append([])
            periods[-1].append(event)
        for period in periods:
            for event in period:
                pid = event.product.id if event.product else ""
                if event.type == "cart_item_added":
                    cart[pid] = cart.get(pid, 0) + event.quantity
                elif event.type == "cart_item_removed" and pid in cart:
                    cart[pid] -= event.quantity
                    if cart[pid] <= 0:
                        del cart[pid]
                elif event.type == "order_completed":
                    cart.clear()
            last = period[-1].occurred_at
            deadline = last + gap
            if not flush and deadline > watermark:
                continue
            views = [e.product.id for e in period if e.type == "product_viewed" and e.product]
            if any(e.type == "order_completed" for e in period):
                continue
            kind = "cart" if cart else "browse" if len(views) >= min_views else None
            if kind is None:
                continue
            recent: list[str] = []
            for pid in reversed(views):
                if pid not in recent:
                    recent.append(pid)
            found.add((sid, kind, last, deadline, tuple(sorted(cart.items())), tuple(recent[:10])))
    return found


TYPES: list[EventType] = [
    "page_viewed",
    "product_viewed",
    "product_viewed",
    "cart_item_added",
    "cart_item_added",
    "cart_item_removed",
    "checkout_started",
    "order_completed",
]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Event], int, int, bool, int]:
    lateness = draw(st.sampled_from([0, 60_000, 10 * 60_000, 45 * 60_000]))
    min_views = draw(st.integers(1, 3))
    flush = draw(st.booleans())
    events: list[Event] = []
    serial = 0
    for s in range(draw(st.integers(1, 4))):
        slots = draw(st.lists(st.integers(0, 40), min_size=1, max_size=12, unique=True))
        for slot in sorted(slots):
            etype = draw(st.sampled_from(TYPES))
            product = draw(st.sampled_from(["a", "b", "c"]))
            serial += 1
            events.append(
                Event(
                    event_id=f"e{serial}",
                    type=etype,
                    occurred_at=T0 + slot * STEP + s,  # distinct times within a session
                    session_id=f"s{s}",
                    customer_id=None,
                    store_id=None,
                    product=Product(product, price=Decimal("1.5"))
                    if etype != "page_viewed"
                    else None,
                    quantity=draw(st.integers(1, 3)),
                )
            )
    duplicates = draw(st.lists(st.sampled_from(events), max_size=3))
    seed = draw(st.integers(0, 2**32 - 1))
    return events + duplicates, lateness, min_views, flush, seed


def arrival_order(events: list[Event], lateness: int, seed: int) -> list[Event]:
    """Shuffle within the lateness bound: nothing arrives after an event more than
    ``lateness`` newer than it, so nothing is late."""
    rng = random.Random(seed)
    keyed = [(e.occurred_at + rng.randint(0, lateness), i, e) for i, e in enumerate(events)]
    return [e for _, _, e in sorted(keyed, key=lambda k: (k[0], k[1]))]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_incremental_equals_batch_reference(
    scenario: tuple[list[Event], int, int, bool, int],
) -> None:
    events, lateness, min_views, flush, seed = scenario
    arrived = arrival_order(events, lateness, seed)
    detector = Detector(DetectorConfig(min_product_views=min_views, lateness_ms=lateness))
    out = []
    for event in arrived:
        out.extend(records(detector.on_event(event)))
    if flush:
        out.extend(records(detector.flush()))
    assert detector.counters.late == 0
    got = {
        (
            a.session_id,
            a.kind,
            a.last_activity_at,
            a.detected_at,
            tuple(sorted((i.product_id, i.quantity) for i in a.cart_items)),
            tuple(v.product_id for v in a.viewed_products),
        )
        for a in out
    }
    assert len(got) == len(out)  # no period reported twice
    assert got == reference(arrived, GAP, min_views, lateness, flush)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_same_input_same_output(scenario: tuple[list[Event], int, int, bool, int]) -> None:
    events, lateness, min_views, flush, seed = scenario
    arrived = arrival_order(events, lateness, seed)

    def once() -> list[bytes]:
        detector = Detector(DetectorConfig(min_product_views=min_views, lateness_ms=lateness))
        out = [a.json for e in arrived for a in detector.on_event(e)]
        return out + [a.json for a in (detector.flush() if flush else [])]

    assert once() == once()
