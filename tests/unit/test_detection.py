"""Every detection rule of docs/semantics.md, one test each, on the pure detection core."""

from __future__ import annotations

from decimal import Decimal
from itertools import count

import orjson
import pytest

from streams.contract.event_parse import parse_event
from streams.contract.events import CartRef, Event, EventType, Order, Product
from streams.core.detection import MINUTE_MS, Closed, Detector, DetectorConfig
from tests.support.abandonments import Abandonment, abandonment_id, records

T0 = 1_569_888_000_000  # 2019-10-01T00:00:00Z
GAP = 30 * MINUTE_MS
_ids = count()


def ev(
    etype: EventType,
    minute: float,
    product: str | None = None,
    *,
    session: str = "s1",
    quantity: int = 1,
    price: str | None = "10.00",
    customer: str | None = None,
    event_id: str | None = None,
    cart_url: str | None = None,
) -> Event:
    return Event(
        event_id=event_id or f"e{next(_ids)}",
        type=etype,
        occurred_at=T0 + int(minute * MINUTE_MS),
        session_id=session,
        customer_id=customer,
        store_id=None,
        product=Product(product, name=f"name-{product}", price=Decimal(price) if price else None)
        if product
        else None,
        quantity=quantity,
        cart=CartRef(url=cart_url) if cart_url else None,
        order=Order(id="o1") if etype == "order_completed" else None,
    )


def run(events: list[Event], flush: bool = False, **config: int) -> list[Abandonment]:
    detector = Detector(DetectorConfig(**config))
    out: list[Closed] = []
    for event in events:
        out.extend(detector.on_event(event))
    if flush:
        out.extend(detector.flush())
    return records(out)


def kinds(result: list[Abandonment]) -> list[tuple[str, str, float]]:
    return [(a.session_id, a.kind, (a.detected_at - T0) / MINUTE_MS) for a in result]


def tick(minute: float) -> Event:
    """An unrelated session's view that moves the watermark to ``minute``."""
    return ev("page_viewed", minute, session=f"clock-{next(_ids)}")


def test_cart_abandonment_closes_when_the_watermark_reaches_the_deadline() -> None:
    events = [ev("product_viewed", 0, "p1"), ev("cart_item_added", 1, "p1", quantity=2)]
    assert run([*events, tick(30.99)]) == []
    (abandonment,) = run([*events, tick(31)])
    assert abandonment.kind == "cart"
    assert abandonment.detected_at == T0 + 31 * MINUTE_MS
    assert abandonment.last_activity_at == T0 + 1 * MINUTE_MS
    assert [(i.product_id, i.quantity, i.price) for i in abandonment.cart_items] == [
        ("p1", 2, Decimal("10.00"))
    ]
    assert abandonment.cart_value == Decimal("20.00")


def test_an_event_exactly_at_the_deadline_starts_a_new_period() -> None:
    result = run([ev("product_viewed", 0, "p1"), ev("product_viewed", 30, "p2")])
    assert kinds(result) == [("s1", "browse", 30)]
    assert [v.product_id for v in result[0].viewed_products] == ["p1"]


def test_an_event_just_before_the_deadline_extends_the_period() -> None:
    result = run([ev("product_viewed", 0, "p1"), ev("product_viewed", 29.99, "p2"), tick(60)])
    assert kinds(result) == [("s1", "browse", 59.99)]


def test_remove_of_an_unknown_product_is_ignored() -> None:
    result = run(
        [ev("cart_item_added", 0, "p1"), ev("cart_item_removed", 1, "p9", quantity=5), tick(40)]
    )
    assert [i.product_id for i in result[0].cart_items] == ["p1"]


def test_remove_never_goes_below_zero_and_an_empty_cart_is_no_cart_abandonment() -> None:
    result = run(
        [
            ev("cart_item_added", 0, "p1", quantity=2),
            ev("cart_item_removed", 1, "p1", quantity=5),
            ev("cart_item_added", 2, "p2"),
            ev("cart_item_removed", 3, "p2"),
            tick(40),
        ]
    )
    assert result == []  # no views, empty cart


def test_a_period_containing_an_order_is_converted_and_the_order_empties_the_cart() -> None:
    converted = run(
        [
            ev("cart_item_added", 0, "p1"),
            ev("order_completed", 5),
            ev("product_viewed", 6, "p3"),
            tick(40),
        ]
    )
    assert converted == []
    # The order emptied the cart: a later period with views only is a browse abandonment.
    later = run(
        [
            ev("cart_item_added", 0, "p1"),
            ev("order_completed", 5),
            ev("product_viewed", 50, "p3"),
            tick(90),
        ]
    )
    assert kinds(later) == [("s1", "browse", 80)]


def test_the_cart_persists_across_periods() -> None:
    result = run(
        [
            ev("cart_item_added", 0, "p1"),
            ev("product_viewed", 40, "p2"),  # closes period 1 (cart), opens period 2
            tick(100),
        ]
    )
    assert kinds(result) == [("s1", "cart", 30), ("s1", "cart", 70)]
    assert [i.product_id for i in result[1].cart_items] == ["p1"]
    assert [v.product_id for v in result[1].viewed_products] == ["p2"]  # per period


def test_several_periods_in_one_session() -> None:
    result = run(
        [
            ev("product_viewed", 0, "p1"),
            ev("page_viewed", 35),  # period 2: no product view → nothing
            ev("product_viewed", 70, "p2"),
            ev("cart_item_added", 71, "p2"),
            ev("order_completed", 72),  # period 3: converted
            ev("product_viewed", 110, "p3"),  # period 4: browse
        ],
        flush=True,
    )
    assert kinds(result) == [("s1", "browse", 30), ("s1", "browse", 140)]


def test_min_product_views() -> None:
    events = [ev("product_viewed", 0, "p1"), ev("product_viewed", 1, "p1"), tick(60)]
    assert kinds(run(events, min_product_views=2)) == [("s1", "browse", 31)]
    assert run(events, min_product_views=3) == []


def test_checkout_started_is_reported() -> None:
    (result,) = run(
        [
            ev("cart_item_added", 0, "p1"),
            ev("checkout_started", 1, cart_url="https://shop.example/cart/abc"),
            tick(60),
        ]
    )
    assert result.checkout_started
    assert result.cart_url == "https://shop.example/cart/abc"


def test_duplicates_are_dropped() -> None:
    added = ev("cart_item_added", 0, "p1", event_id="dup")
    (result,) = run([added, added, ev("cart_item_added", 1, "p1", event_id="dup"), tick(60)])
    assert result.cart_items[0].quantity == 1


def test_out_of_order_within_lateness_is_applied_in_event_time_order() -> None:
    # Arrival order: remove (t=2) before add (t=1). In time order the cart ends empty.
    events = [ev("cart_item_removed", 2, "p1"), ev("cart_item_added", 1, "p1"), tick(60)]
    assert run(events, lateness_ms=5 * MINUTE_MS) == []
    # With no lateness allowed the add is late: applied on arrival, so the cart keeps it.
    (late,) = run(events, lateness_ms=0)
    assert late.kind == "cart"


def test_a_late_event_never_reopens_a_closed_period() -> None:
    detector = Detector(DetectorConfig())
    assert detector.on_event(ev("product_viewed", 0, "p1")) == []
    (closed,) = detector.on_event(tick(40))
    assert closed.kind == "browse"
    # Late (t=5 < watermark 40), inside the closed period [0, 30): no new period, no retraction,
    # but the cart does change.
    assert detector.on_event(ev("cart_item_added", 5, "p2")) == []
    assert detector.counters.late == 1
    assert detector.counters.late_into_closed == 1
    assert detector.flush() == []
    assert [line[0] for line in orjson.loads(detector.state("s1") or b"")["cart"]] == ["p2"]


def test_a_late_event_after_a_closed_period_opens_a_new_one_that_closes_at_once() -> None:
    detector = Detector(DetectorConfig())
    detector.on_event(ev("product_viewed", 0, "p1"))
    detector.on_event(tick(100))
    # t=35 is after the closed period's deadline (30) but before the watermark (100).
    (result,) = detector.on_event(ev("product_viewed", 35, "p2"))
    assert kinds(records([result])) == [("s1", "browse", 65)]
    assert detector.counters.late == 1


def test_the_customer_is_the_last_non_empty_one() -> None:
    (result,) = run(
        [
            ev("product_viewed", 0, "p1", customer="c1"),
            ev("product_viewed", 1, "p1", customer="c2"),
            ev("product_viewed", 2, "p1", customer=None),
            tick(60),
        ]
    )
    assert result.customer_id == "c2"
    assert result.key == "c2"
    assert result.store_id == "default"


def test_viewed_products_are_distinct_most_recent_first_at_most_ten() -> None:
    events = [ev("product_viewed", i / 10, f"p{i}") for i in range(12)]
    events.append(ev("product_viewed", 2, "p3"))
    (result,) = run([*events, tick(60)])
    viewed = result.viewed_products
    assert [v.product_id for v in viewed] == [
        "p3",
        "p11",
        "p10",
        "p9",
        "p8",
        "p7",
        "p6",
        "p5",
        "p4",
        "p2",
    ]
    assert viewed[0].views == 2


def test_abandonment_id_is_a_stable_hash_and_the_record_has_the_contract_shape() -> None:
    (result,) = run([ev("cart_item_added", 0, "p1"), tick(60)])
    assert result.abandonment_id == abandonment_id("s1", "cart", T0 + GAP)
    assert result.abandonment_id != abandonment_id("s1", "browse", T0 + GAP)
    record = orjson.loads(result.to_json())
    assert record["detected_at"] == "2019-10-01T00:30:00.000Z"
    assert record["last_activity_at"] == "2019-10-01T00:00:00.000Z"
    assert record["cart"]["items"][0] == {
        "product_id": "p1",
        "quantity": 1,
        "price": "10.00",
        "name": "name-p1",
        "url": None,
        "image_url": None,
    }
    assert record["cart"]["value"] == "10.00"
    assert set(record) == {
        "abandonment_id",
        "kind",
        "session_id",
        "customer_id",
        "store_id",
        "last_activity_at",
        "detected_at",
        "checkout_started",
        "cart",
        "viewed_products",
    }


def test_sessions_are_forgotten_after_the_dedup_window() -> None:
    detector = Detector(DetectorConfig(dedup_window_ms=60 * MINUTE_MS))
    detector.on_event(ev("cart_item_added", 0, "p1"))
    detector.on_event(tick(59))
    assert "s1" in detector
    detector.on_event(tick(61))
    assert "s1" not in detector
    assert "s1" in detector.take_changes()[1]
    assert detector.counters.evicted >= 1


def test_the_watermark_advances_from_outside_and_never_goes_back() -> None:
    detector = Detector(DetectorConfig())
    detector.on_event(ev("product_viewed", 0, "p1"))
    assert detector.advance(T0 + 29 * MINUTE_MS) == []
    assert kinds(records(detector.advance(T0 + 30 * MINUTE_MS))) == [("s1", "browse", 30)]
    assert detector.advance(T0) == []
    assert detector.watermark == T0 + 30 * MINUTE_MS


def test_state_survives_serialisation_mid_stream() -> None:
    """A worker restored from its changelog continues exactly where it was."""
    first = [
        ev("cart_item_added", 0, "p1", quantity=3, price="2.50"),
        ev("product_viewed", 1, "p2"),
        ev("cart_item_removed", 2, "p1"),
        ev("product_viewed", 4, "p3"),  # ahead of the watermark with lateness: pending
    ]
    rest = [ev("product_viewed", 3, "p4"), tick(80)]
    config = DetectorConfig(lateness_ms=2 * MINUTE_MS)
    straight = Detector(config)
    expected: list[Closed] = []
    for event in first + rest:
        expected.extend(straight.on_event(event))
    expected.extend(straight.flush())

    before = Detector(config)
    for event in first:
        before.on_event(event)
    restored = [before.state(sid) or b"" for sid in before.session_ids()]
    after = Detector(config, restored, before.watermark, before.max_event_ms)
    assert {sid: orjson.loads(after.state(sid) or b"") for sid in after.session_ids()} == {
        sid: orjson.loads(raw) for sid, raw in zip(before.session_ids(), restored, strict=True)
    }
    out: list[Closed] = []
    for event in rest:
        out.extend(after.on_event(event))
    out.extend(after.flush())
    assert out == expected
    assert [a.kind for a in out] == ["cart"]


@pytest.mark.parametrize("bad", [{"gap_ms": 0}, {"min_product_views": 0}, {"lateness_ms": -1}])
def test_bad_config_is_refused(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must be"):
        DetectorConfig(**bad)


def test_pending_events_kept_as_received_survive_serialisation() -> None:
    config = DetectorConfig(lateness_ms=10 * MINUTE_MS)
    detector = Detector(config)
    raw = orjson.dumps(
        {
            "event_id": "r1",
            "type": "cart_item_added",
            "occurred_at": "2019-10-01T00:05:00Z",
            "session_id": "s1",
            "product": {"id": "p1", "price": "3.00"},
        }
    )
    detector.on_event(parse_event(raw + b"\n"))  # ahead of the watermark: pending
    state = detector.state("s1") or b""
    ((_, _, pending),) = orjson.loads(state)["p"]
    assert parse_event(orjson.dumps(pending)) == parse_event(raw)
    after = Detector(config, [state], detector.watermark, detector.max_event_ms)
    assert orjson.loads(after.state("s1") or b"") == orjson.loads(state)
    (result,) = records(after.flush())
    assert result.cart_value == Decimal("3.00")


def test_without_change_tracking_the_result_is_the_same_and_nothing_is_collected() -> None:
    events = [
        ev("cart_item_added", 0, "p1", price="2.50"),
        ev("product_viewed", 1, "p2", session="s2"),
        tick(40),
        ev("product_viewed", 41, "p3", session="s2"),
        tick(200),
    ]
    tracked, untracked = Detector(DetectorConfig()), Detector(DetectorConfig(), track_changes=False)
    found = [a for e in events for a in tracked.on_event(e)]
    assert kinds(records(found)) == [("s1", "cart", 30), ("s2", "browse", 31), ("s2", "browse", 71)]
    assert [a for e in events for a in untracked.on_event(e)] == found
    # the worker's kind persists what changed: every session the events touched, the clocks'
    # too; none is forgotten yet (sessions are kept for the 24 h dedup window)
    changed, deleted = tracked.take_changes()
    assert {sid for sid, _ in changed} == {"s1", "s2", events[2].session_id, events[4].session_id}
    assert deleted == []
    assert untracked.take_changes() == ([], [])


def test_ties_keep_arrival_order_across_a_restore() -> None:
    """Events at the same time apply in arrival order, also when some arrived before a restart."""
    config = DetectorConfig(lateness_ms=10 * MINUTE_MS)
    first = [ev("page_viewed", 5), ev("cart_item_added", 6, "p1")]  # both pending
    then = ev("cart_item_removed", 6, "p1")  # same time, arrives last: the cart ends empty

    straight = Detector(config)
    for event in [*first, then]:
        straight.on_event(event)
    assert straight.flush() == []

    before = Detector(config)
    for event in first:
        before.on_event(event)
    after = Detector(config, [before.state("s1") or b""], before.watermark, before.max_event_ms)
    after.on_event(then)
    assert after.flush() == []


def test_restore_many_skips_what_it_cannot_read_and_restores_the_rest_as_restore_does() -> None:
    """The load's bulk restore (without the interpreter's lock): the same detector as one
    ``restore`` per value, and the index and reason of each value it could not read."""
    config = DetectorConfig(lateness_ms=10 * MINUTE_MS)
    before = Detector(config)
    for event in [ev("cart_item_added", 5, "p1"), ev("page_viewed", 6, session="s2")]:
        before.on_event(event)
    states = [before.state("s1") or b"", b"{not a session", before.state("s2") or b""]
    one_by_one = Detector(config, [states[0], states[2]], before.watermark, before.max_event_ms)
    bulk = Detector(config, (), before.watermark, before.max_event_ms)
    refused = bulk.restore_many(states)
    assert [index for index, _ in refused] == [1]
    assert refused[0][1]  # a reason
    assert len(bulk) == len(one_by_one) == 2
    closed = records(bulk.flush())
    assert closed and closed == records(one_by_one.flush())


def test_a_cart_value_past_28_digits_is_rounded_as_python_rounds_it() -> None:
    """The core's exact arithmetic stops at Python's precision; past it, Python computes."""
    price = "9" * 28
    (result,) = run([ev("cart_item_added", 0, "p1", quantity=2, price=price), tick(60)])
    assert str(result.cart_value) == "2.000000000000000000000000000E+28"
    assert result.cart_value == Decimal(price) * 2
    (exact,) = run([ev("cart_item_added", 0, "p1", quantity=3, price="0.0000001"), tick(60)])
    assert str(exact.cart_value) == "3E-7"
