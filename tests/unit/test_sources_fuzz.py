"""Hostile REES46 / Open CDP CSV: the reader never raises for a row, and what it accepts is in the
contract (in range, and its payload reads back as the same event)."""

from __future__ import annotations

from pathlib import Path
from tempfile import TemporaryDirectory

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from streams.contract.event_parse import parse_event
from streams.contract.events import MAX_EVENT_MS, MIN_EVENT_MS
from streams.offline.sources import read_rees46
from tests.support.fuzz import examples

HEADER = (
    b"event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n"
)

times = st.one_of(
    st.builds(
        "{}-{:02d}-{:02d}{}{:02d}:{:02d}:{:02d}{}{}".format,
        st.sampled_from([1999, 2000, 2019, 2099, 2100, 9999]),
        st.integers(0, 13),
        st.integers(0, 32),
        st.sampled_from([" ", "T", "_"]),
        st.integers(0, 24),
        st.integers(0, 60),
        st.integers(0, 60),
        st.sampled_from(["", ".5", ",5", ".123456789", "\x00"]),
        st.sampled_from([" UTC", " utc", "Z", "", " UTC\x00"]),
    ),
    st.sampled_from(["2019-W40-2 00:00:00 UTC", "9999-12-31 00:00:00 UTC"]),
    st.text(max_size=30),
)
prices = st.one_of(
    st.sampled_from(
        ["515.67", "0", "-0", "-0.00", "-1", "1_000", " 10", "\u0661\u0660", "1e3", "NaN", ""]
    ),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.text(max_size=12),
)
fields = st.text(st.characters(codec="utf-8"), max_size=12)
rows = st.builds(
    lambda t, k, pid, cat, brand, price, user, session: ",".join(
        [t, k, pid, "2053013555631882655", cat, brand, price, user, session]
    ).encode("utf-8", "surrogatepass"),
    times,
    st.one_of(st.sampled_from(["view", "cart", "remove_from_cart", "purchase"]), fields),
    st.one_of(st.just("1002524"), fields),
    fields,
    fields,
    prices,
    fields,
    st.one_of(st.just("s1"), fields, st.just("x" * 257)),
)
lines = st.one_of(rows, rows, st.binary(max_size=80))


def check(body: list[bytes]) -> None:
    with TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.csv"
        path.write_bytes(HEADER + b"\n".join(body) + b"\n")
        for record in read_rees46(path):  # raises nothing: a bad row is a record with a reason
            if record.event is None:
                assert record.reason
                assert record.payload is None
                continue
            event = record.event
            assert MIN_EVENT_MS <= event.occurred_at < MAX_EVENT_MS
            assert event.product is not None
            price = event.product.price
            assert price is None or (price.is_finite() and not price.is_signed())
            assert record.payload is not None
            assert parse_event(record.payload) == event


@pytest.mark.fuzz
@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(lines, min_size=1, max_size=5))
@example([b"9999-12-31 00:00:00 UTC,view,1,2,,,1.00,1,s"])  # moved the watermark past everything
@example([b"2019-10-01 00:00:00 UTC,purchase,1,2,,,-0,1,s"])  # lost the order
@example([b"2019-10-01 00:00:00 UTC,\r,1,2,,,1,1,s"])  # csv.Error escaped the reader
@example([b"2019-10-01 00:00:00,5 UTC,view,1,2,,,1,1,s", b'"2019-10-01 00:00:00,5 UTC",view'])
def test_the_rees46_reader_refuses_with_a_reason_and_accepts_only_the_contract(
    body: list[bytes],
) -> None:
    check(body)
