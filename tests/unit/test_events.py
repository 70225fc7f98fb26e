from __future__ import annotations

from decimal import Decimal
from typing import get_args

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.contract import native
from streams.contract.errors import InvalidRecord, UnknownEventType
from streams.contract.event_parse import canonical_json, parse_event
from streams.contract.events import (
    EVENT_TYPES,
    MAX_EVENT_MS,
    MAX_RECORD_BYTES,
    MIN_EVENT_MS,
    EventType,
    format_ms,
    parse_time,
)

BASE = {
    "event_id": "e1",
    "type": "cart_item_added",
    "occurred_at": "2019-10-01T00:10:00Z",
    "session_id": "s1",
    "customer_id": "c1",
    "product": {"id": "p1", "name": "Mug", "price": "12.50", "currency": "usd"},
    "quantity": 2,
}


def raw(**changes: object) -> bytes:
    record = {**BASE, **changes}
    return orjson.dumps({k: v for k, v in record.items() if v is not ...})


def test_valid_cart_event() -> None:
    event = parse_event(raw())
    assert event.event_id == "e1"
    assert event.type == "cart_item_added"
    assert event.occurred_at == 1_569_888_600_000
    assert event.session_id == "s1"
    assert event.customer_id == "c1"
    assert event.product is not None
    assert event.product.price == Decimal("12.50")
    assert event.product.currency == "USD"
    assert event.quantity == 2


@pytest.mark.parametrize(
    ("value", "expected_ms"),
    [
        ("2019-10-01T00:10:00Z", 1_569_888_600_000),
        ("2019-10-01T00:10:00.123Z", 1_569_888_600_123),
        ("2019-10-01T02:10:00+02:00", 1_569_888_600_000),
        ("2019-09-30T19:10:00-05:00", 1_569_888_600_000),
        ("2019-10-01 00:10:00+00:00", 1_569_888_600_000),
        (1_569_888_600_000, 1_569_888_600_000),
    ],
)
def test_occurred_at_formats(value: object, expected_ms: int) -> None:
    assert parse_event(raw(occurred_at=value)).occurred_at == expected_ms


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2019-10-01T00:10:00", "offset"),  # no offset: ambiguous, never silently UTC
        ("2019-10-01", "offset"),
        ("yesterday", "RFC 3339"),
        (1_569_888_600, "outside"),  # seconds, not milliseconds
        (1.5e12, "epoch milliseconds"),
        (True, "epoch milliseconds"),
        (None, "required"),
        (..., "required"),
    ],
)
def test_bad_occurred_at(value: object, reason: str) -> None:
    with pytest.raises(InvalidRecord, match=reason):
        parse_event(raw(occurred_at=value))


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"event_id": ...}, "event_id is required"),
        ({"event_id": ""}, "event_id is required"),
        ({"session_id": ...}, "session_id is required"),
        ({"session_id": ["x"]}, "session_id is required"),
        ({"type": ...}, "type is required"),
        ({"product": ...}, "needs product.id"),
        ({"product": {"name": "x"}}, "product.id is required"),
        ({"product": "p1"}, "product must be an object"),
        ({"quantity": 0}, "quantity must be an integer >= 1"),
        ({"quantity": 1.5}, "quantity must be an integer >= 1"),
        ({"quantity": True}, "quantity must be an integer >= 1"),
        ({"quantity": 2**63}, r"quantity must be an integer >= 1 and < 2\*\*63"),
        ({"product": {"id": "p", "price": "-1"}}, "product.price must be a finite"),
        ({"product": {"id": "p", "price": "NaN"}}, "product.price must be a finite"),
        ({"product": {"id": "p", "price": "abc"}}, "product.price is not a decimal"),
        ({"product": {"id": "p", "price": "1" * 29}}, "product.price must have at most 28 "),
        ({"product": {"id": "p", "price": "1E+29"}}, "product.price must have at most 28 "),
        ({"product": {"id": "p", "price": "1E-29"}}, "product.price must have at most 28 "),
        ({"order": {"value": "0." + "0" * 29}}, "order.value must have at most 28 "),
        ({"product": {"id": "p", "currency": "dollars"}}, "ISO 4217"),
        ({"customer_id": {"a": 1}}, "customer_id must be a string"),
        ({"cart": "c"}, "cart must be an object"),
        ({"order": 5}, "order must be an object"),
    ],
)
def test_contract_violations_carry_a_reason(changes: dict[str, object], reason: str) -> None:
    with pytest.raises(InvalidRecord, match=reason):
        parse_event(raw(**changes))


def test_unknown_type_is_its_own_error() -> None:
    with pytest.raises(UnknownEventType, match="unknown type 'wishlist_added'"):
        parse_event(raw(type="wishlist_added"))


def test_page_view_needs_no_product_and_quantity_defaults_to_one() -> None:
    event = parse_event(raw(type="page_viewed", product=..., quantity=...))
    assert event.product is None
    added = parse_event(raw(quantity=...))
    assert added.quantity == 1


def test_numeric_ids_are_read_as_strings() -> None:
    event = parse_event(raw(customer_id=541312140, product={"id": 44600062, "price": 35.79}))
    assert event.customer_id == "541312140"
    assert event.product is not None
    assert event.product.id == "44600062"
    assert event.product.price == Decimal("35.79")


def test_empty_customer_and_store_are_absent() -> None:
    event = parse_event(raw(customer_id="", store_id=None))
    assert event.customer_id is None
    assert event.store_id is None


def test_size_limit() -> None:
    padding = "x" * MAX_RECORD_BYTES
    with pytest.raises(InvalidRecord, match="over the 65536-byte limit"):
        parse_event(raw(cart={"url": padding}))
    just_fits = raw(cart={"url": ""})
    assert parse_event(just_fits + b" " * (MAX_RECORD_BYTES - len(just_fits))).cart is not None


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "not an array"),
        (b'"text"', "not a string"),
        (b"null", "not null"),
    ],
)
def test_not_an_object(payload: bytes, reason: str) -> None:
    with pytest.raises(InvalidRecord, match=reason.replace("not ", ".*")):
        parse_event(payload)


def test_order_completed_round_trips_through_canonical_json() -> None:
    record = raw(
        type="order_completed",
        product=...,
        quantity=...,
        occurred_at="2019-10-01T02:10:00.5+02:00",
        order={"id": "o1", "value": 99.9, "currency": "EUR"},
        cart={"id": "k1", "url": "https://shop.example/cart"},
    )
    event = parse_event(record)
    encoded = orjson.loads(canonical_json(record))
    assert encoded["occurred_at"] == "2019-10-01T00:10:00.500Z"
    assert encoded["order"] == {"id": "o1", "value": "99.9", "currency": "EUR"}
    assert "quantity" not in encoded
    assert parse_event(canonical_json(record)) == event


def test_format_ms() -> None:
    assert format_ms(1_569_888_600_000) == "2019-10-01T00:10:00.000Z"
    assert format_ms(1_569_888_600_007) == "2019-10-01T00:10:00.007Z"
    assert parse_time(format_ms(1_569_888_600_007)) == 1_569_888_600_007


@given(st.binary(max_size=2048))
def test_arbitrary_bytes_are_accepted_or_rejected_with_a_reason(data: bytes) -> None:
    try:
        parse_event(data)
    except InvalidRecord as exc:
        assert exc.reason


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=8,
)
contract_keys = st.sampled_from(
    [
        "event_id",
        "type",
        "occurred_at",
        "session_id",
        "customer_id",
        "store_id",
        "product",
        "quantity",
        "cart",
        "order",
        "id",
        "price",
        "currency",
        "value",
    ]
)
event_types = st.sampled_from([*sorted(EVENT_TYPES), "other"])


# Generation is slow on a busy 2-core machine; the check is about the parser, not the generator.
@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(contract_keys, json_values | event_types, max_size=10),
    st.booleans(),
)
def test_arbitrary_json_objects_are_accepted_or_rejected_with_a_reason(
    record: dict[str, object], complete: bool
) -> None:
    if complete:  # start from a valid record so that deeper fields get exercised too
        record = {**BASE, **record}
    try:
        event = parse_event(orjson.dumps(record))
    except InvalidRecord as exc:
        assert exc.reason
    else:
        assert event.event_id and event.session_id
        assert parse_event(canonical_json(orjson.dumps(record))) == event


def test_the_event_type_literal_spells_the_readers_types() -> None:
    assert set(get_args(EventType)) == EVENT_TYPES == set(native.EVENT_TYPES)


def test_format_ms_is_the_readers_time_writer() -> None:
    for ms in (MIN_EVENT_MS, 1_569_888_600_123, MAX_EVENT_MS - 1):
        assert format_ms(ms) == native.format_time(ms)
        assert parse_time(format_ms(ms)) == ms
    with pytest.raises(ValueError, match="outside the years 0 to 9999"):
        native.format_time(10**18)
