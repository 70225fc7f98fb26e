"""``parse_event`` on any record: an ``Event`` in the core's types that reads back the same from
its canonical form, or ``InvalidRecord`` with a reason; never anything else. The strategies
here (valid records with one to three fields made odd) serve test_native_parse.py too.
"""

from __future__ import annotations

import json
from decimal import Decimal

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.contract.errors import InvalidRecord
from streams.contract.event_parse import canonical_json, parse_event
from streams.contract.events import EVENT_TYPES, format_ms

T0 = 1_569_888_000_000  # 2019-10-01T00:00:00Z

ids = st.one_of(
    st.sampled_from(["e1", "s-1", "c1", "p1", "x" * 256, "x" * 257, "", " ", "é"]),
    st.text(max_size=6),
    st.integers(-2, 10**20),
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
)
valid_times = st.one_of(
    st.integers(T0 - 10**11, T0 + 10**11).map(format_ms),  # the canonical form, memo path
    st.integers(0, 59).map(lambda s: f"2019-10-01T00:10:{s:02d}.123Z"),  # one minute, many hits
    st.integers(T0 - 10**11, T0 + 10**11),
)
times = st.one_of(
    valid_times,
    st.integers(T0 - 10**13, T0 + 10**13).map(format_ms),
    st.sampled_from(
        [
            "2019-10-01T00:10:60.000Z",
            "2019-10-01T00:10:5x.000Z",
            "2019-10-01T00:10:0\u00b2.000Z",
            "2019-10-01T00:10:00.12\u0663Z",
            "2019-10-01T00:10:00Z",
            "2019-10-01T02:10:00.000+02:00",
            "2019-10-01 00:10:00.000Z",
            "2019-10-01T00:10:00.000",
            "2019-10-01T00:10:00.000z",
            "1999-12-31T23:59:59.999Z",
            "2100-01-01T00:00:00.000Z",
            "yesterday",
            "",
        ]
    ),
    st.integers(T0 - 10**13, T0 + 10**13),
    st.sampled_from([True, None, 1.5e12, [], {}]),
)
money = st.one_of(
    st.sampled_from(
        ["12.50", "0", "-1", "NaN", "Infinity", "1e2", " 1", "1_0", "", "abc", "\u0661"]
    ),
    st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str),
    st.integers(-5, 10**20),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.none(),
    st.booleans(),
)
currencies = st.one_of(
    st.sampled_from(["USD", "usd", "EUR", "US", "USDX", "U$D", "", "ÄÖÜ"]),
    st.none(),
    st.integers(0, 3),
)
texts = st.one_of(st.none(), st.text(max_size=8), st.integers(0, 3))
types = st.sampled_from([*sorted(EVENT_TYPES), "other", "", 7])


valid_types = st.sampled_from(sorted(EVENT_TYPES))
valid_records = st.fixed_dictionaries(
    {
        "event_id": st.sampled_from(["e1", "e2"]),
        "type": valid_types,
        "occurred_at": valid_times,
        "session_id": st.sampled_from(["s1", "s2"]),
        "product": st.fixed_dictionaries(
            {"id": st.sampled_from(["p1", "p2"])},
            optional={
                "name": st.text(max_size=8),
                "price": st.decimals(min_value=0, max_value=10**6, places=2).map(str),
                "currency": st.sampled_from(["USD", "EUR"]),
                "url": st.text(max_size=8),
            },
        ),
    },
    optional={
        "customer_id": st.sampled_from(["c1", "c2"]),
        "store_id": st.sampled_from(["store-1"]),
        "quantity": st.integers(1, 3),
        "cart": st.fixed_dictionaries({}, optional={"id": st.just("c1"), "url": texts}),
        "order": st.fixed_dictionaries(
            {}, optional={"value": st.just("10.00"), "currency": st.just("USD")}
        ),
    },
)
products = st.fixed_dictionaries(
    {},
    optional={
        "id": ids,
        "name": texts,
        "price": money,
        "currency": currencies,
        "url": texts,
        "image_url": texts,
        "category": texts,
    },
)
# Each odd value replaces one field of a valid record (``...`` leaves the field out).
odd_fields = {
    "event_id": ids,
    "type": types,
    "occurred_at": times,
    "session_id": ids,
    "customer_id": ids,
    "store_id": ids,
    "product": st.one_of(products, st.sampled_from([None, "p1", []])),
    "quantity": st.one_of(st.integers(-2, 2**64), st.sampled_from([None, 1.0, True])),
    "cart": st.one_of(
        st.fixed_dictionaries({}, optional={"id": ids, "url": texts}),
        st.sampled_from([None, "c", 3]),
    ),
    "order": st.one_of(
        st.fixed_dictionaries({}, optional={"id": ids, "value": money, "currency": currencies}),
        st.sampled_from([None, "o", []]),
    ),
    "raw": st.sampled_from(["aGVsbG8=", "not base64", 3]),
}


@st.composite
def records(draw: st.DrawFn) -> dict[str, object]:
    record: dict[str, object] = draw(valid_records)
    for key in draw(st.lists(st.sampled_from(sorted(odd_fields)), max_size=3, unique=True)):
        value = draw(st.one_of(st.just(...), odd_fields[key]))
        if value is ...:
            record.pop(key, None)
        else:
            record[key] = value
    return record


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(records())
def test_any_record_is_an_event_that_reads_back_the_same_or_refused_with_a_reason(
    record: dict[str, object],
) -> None:
    # The standard library's encoder, so that integers past 64 bits (which orjson refuses) occur.
    line = json.dumps(record).encode()
    try:
        event = parse_event(line)
    except InvalidRecord as exc:
        assert exc.reason
        return
    assert type(event.occurred_at) is int
    if event.product is not None:
        assert event.product.price is None or type(event.product.price) is Decimal
    assert parse_event(canonical_json(line)) == event


def canonical(**changes: object) -> bytes:
    record: dict[str, object] = {
        "event_id": "e1",
        "type": "cart_item_added",
        "occurred_at": "2019-10-01T00:10:00.250Z",
        "session_id": "s1",
        "product": {"id": "p1", "price": "12.50", "currency": "USD"},
        "quantity": 2,
        **changes,
    }
    return orjson.dumps(record)


def test_a_canonical_record_is_read_into_the_core_types() -> None:
    event = parse_event(canonical())
    assert event.occurred_at == T0 + 10 * 60_000 + 250
    assert event.product is not None
    assert event.product.price == Decimal("12.50")
    assert event.quantity == 2


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"occurred_at": "2019-10-01T00:10:60.000Z"}, "occurred_at must be RFC 3339"),
        ({"product": {"id": "p1", "price": "-1"}}, "product.price must be a finite amount"),
        ({"product": {"id": "p1", "currency": "US"}}, "product.currency must be an ISO 4217"),
        ({"product": None}, "cart_item_added needs product.id"),
        ({"quantity": 0}, "quantity must be an integer >= 1"),
    ],
)
def test_what_the_contract_refuses_is_refused_with_its_reason(
    changes: dict[str, object], reason: str
) -> None:
    with pytest.raises(InvalidRecord) as caught:
        parse_event(canonical(**changes))
    assert caught.value.reason.startswith(reason)


def test_a_quantity_outside_cart_changes_is_ignored() -> None:
    assert parse_event(canonical(type="product_viewed", quantity=5)).quantity == 1
