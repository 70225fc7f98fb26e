"""The contract's reader (native/src/read.rs) from Python, on any bytes.

Its rules are held by tests/fixtures/contract_cases.json (tests/unit/test_contract_cases.py and
cargo test). Here generated records, odd and broken ones among them, check what no table can:
the reader never raises anything but ``InvalidRecord``, whatever it accepts reads back the same
from its canonical JSON, and the ``Record`` a shell routes by agrees with the ``Event``.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from streams.contract.abandonment import Kind
from streams.contract.errors import InvalidRecord
from streams.contract.event_parse import canonical_json, parse_event, read_record
from streams.contract.native import MIN_EVENT_MS
from streams.core.detection import Detector, DetectorConfig
from tests.support.abandonments import abandonment_id
from tests.unit.test_event_parse import records

# The contract's fields in order: arrays built from them are what a positional reader (serde's
# derived one) would take for objects. The reader must refuse them.
SHAPES = {
    "record": "event_id type occurred_at session_id customer_id store_id product quantity cart order",
    "product": "id name price currency url image_url category",
    "cart": "id url",
    "order": "id value currency",
}
WIDE_USD = "\uff35\uff33\uff24"  # alphabetic, but not ASCII

ids = st.one_of(
    st.sampled_from(["x" * 256, "x" * 257, "é" * 256, "é" * 257, "😀" * 256, "😀" * 257]),
    st.sampled_from(["x" * 255 + "😀", "", "e1", "\x00", "\ud83d\ude00"]),
    st.text(max_size=4),
    st.integers(-1, 3),
    st.none(),
)
texts = st.one_of(
    st.text(max_size=6),
    st.sampled_from(["\ud800", "\ud83d\ude00", "\x00\x1f\x7f", "a\u2028b", "é😀", ""]),
    st.none(),
    st.integers(0, 2),
)
times = st.builds(
    "{}-{:02d}-{:02d}{}{:02d}:{:02d}:{:02d}{}{}".format,
    st.sampled_from([1999, 2000, 2019, 2024, 2099, 2100]),
    st.integers(0, 13),
    st.sampled_from([0, 1, 28, 29, 30, 31, 32]),
    st.sampled_from(["T", "t", " "]),
    st.sampled_from([0, 9, 23, 24]),
    st.sampled_from([0, 59, 60]),
    st.sampled_from([0, 59, 60]),
    st.sampled_from(["", ".1", ".12", ".123", ".1234", ".123456", ".1234567", ",123"]),
    st.sampled_from(["Z", "z", "", "+02:00", "-05:30", "+23:59", "+24:00", "-00:00", "+0200"]),
)
prices = st.one_of(
    st.sampled_from(["12.50", "0", "0.00", "007.5", "0.0000000", "0.0000001", "9" * 27, "9" * 28]),
    st.sampled_from(
        ["-1", "-0", "1e2", "1E+2", " 1", "1 ", "+5", ".5", "5.", "1_000", "\u0661", "NaN"]
    ),
    st.decimals(min_value=0, max_value=10**30, allow_nan=False).map(str),
    st.sampled_from([12.5, 12, -1, None, "", True]),
)
currencies = st.sampled_from(
    ["USD", "usd", "Usd", "US", "USDX", "U$D", "ÄÖÜ", WIDE_USD, "", None, 840]
)
more_odd: dict[str, st.SearchStrategy[Any]] = {
    "event_id": ids,
    "session_id": ids,
    "customer_id": ids,
    "store_id": ids,
    "occurred_at": times,
    "product": st.fixed_dictionaries(
        {"id": ids},
        optional={"name": texts, "price": prices, "currency": currencies}
        | {"url": texts, "image_url": texts, "category": texts},
    ),
    "quantity": st.one_of(
        st.integers(-1, 3),
        st.sampled_from([2**63 - 1, 2**63, 2**64, 10**30, 1.0, 2.5, True, None, "2", [], {}]),
    ),
    "cart": st.fixed_dictionaries({}, optional={"id": ids, "url": texts}),
}
# Extra members written into the JSON text: unknown fields, or a second copy of a known one.
extra_keys = st.sampled_from(["extra", "raw", "Event_id", "quantity", "event_id", "type"])
extra_values = st.one_of(
    st.sampled_from([b"1e999", b'"\\ud800"', b'"\xff"', b"123456789012345678901234567890"]),
    st.sampled_from([b"-0", b"null", b'[1, {"a": null}]', b'["\\ud800"]', b'"e1"', b"2"]),
)


def encode(value: object, ascii_only: bool) -> bytes:
    """JSON text; without ``ascii_only`` a lone surrogate becomes invalid UTF-8 (on purpose)."""
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@st.composite
def raw_records(draw: st.DrawFn) -> bytes:
    record: dict[str, Any] = draw(records())
    for key in draw(st.lists(st.sampled_from(sorted(more_odd)), max_size=2, unique=True)):
        record[key] = draw(more_odd[key])
    as_array = draw(st.sampled_from([None] * 6 + sorted(SHAPES)))
    value: object = record
    if as_array == "record":
        value = [record.get(k) for k in SHAPES["record"].split()]
    elif as_array is not None and isinstance(record.get(as_array), dict):
        record[as_array] = [record[as_array].get(k) for k in SHAPES[as_array].split()]
    body = encode(value, ascii_only=draw(st.booleans()))
    if not body.startswith(b"{"):
        return body
    if draw(st.booleans()) and isinstance(record.get("product"), dict) and record["product"]:
        body = body.replace(b'"product": {', b'"product": {"id": "p0", ', 1)
    members = [
        encode(k, True) + b": " + v
        for k, v in draw(st.lists(st.tuples(extra_keys, extra_values), max_size=2))
    ]
    inner = body[1:-1]
    body = b"{" + b", ".join(members + ([inner] if inner else [])) + b"}"
    size = draw(st.sampled_from([0] * 8 + [65_535, 65_536, 65_537, 70_000]))
    head, tail = b'{"pad": "', b'", ' + body[1:] if inner or members else b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail if size else body


def check(raw: bytes) -> bool:
    """Whether the reader accepted ``raw``; when it did, that the event reads back the same."""
    try:
        record = read_record(raw)
    except InvalidRecord as exc:  # UnknownEventType included
        assert exc.reason
        with pytest.raises(InvalidRecord) as again:
            parse_event(raw)
        assert again.value.reason == exc.reason
        return False
    parsed = parse_event(raw)
    canonical = canonical_json(raw)
    assert canonical_json(canonical) == canonical
    assert parse_event(canonical) == parsed  # types too: int times and quantities, Decimals
    assert (record.session_id, record.type, record.customer_id, record.occurred_at) == (
        parsed.session_id,
        parsed.type,
        parsed.customer_id,
        parsed.occurred_at,
    )
    return True


@settings(max_examples=1000, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_records())
def test_the_reader_takes_any_bytes_and_what_it_accepts_reads_back(raw: bytes) -> None:
    event("accepted" if check(raw) else "refused")


@settings(max_examples=300, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=64))
def test_the_reader_takes_random_bytes(raw: bytes) -> None:
    check(raw)


T0 = "2019-10-01T00:10:00.250Z"
PLAIN = {"event_id": "e1", "type": "cart_item_added", "occurred_at": T0, "session_id": "s1"}


def line(**changes: object) -> bytes:
    return orjson.dumps({**PLAIN, "product": {"id": "p1"}, **changes})


@pytest.mark.parametrize("session_id", ["s1", "é", "😀-session", "a\x00b", "x" * 256, "ΣΩ\u2028"])
@pytest.mark.parametrize("kind", ["cart", "browse"])
@pytest.mark.parametrize("deadline", [MIN_EVENT_MS + 1, 1_569_888_600_250, 4_102_444_799_999])
def test_abandonment_ids_match(session_id: str, kind: Kind, deadline: int) -> None:
    """The core's records carry the id Python computes for (session, kind, deadline)."""
    gap = deadline - MIN_EVENT_MS
    detector = Detector(DetectorConfig(gap_ms=gap, dedup_window_ms=gap))
    kind_type = "cart_item_added" if kind == "cart" else "product_viewed"
    detector.take(
        read_record(line(type=kind_type, session_id=session_id, occurred_at=MIN_EVENT_MS))
    )
    [closed] = detector.flush()
    assert (closed.kind, closed.detected_at) == (kind, deadline)
    assert orjson.loads(closed.json)["abandonment_id"] == abandonment_id(session_id, kind, deadline)


@pytest.mark.parametrize(
    "extra",
    [b'"\xff"', b'"\\ud800"', b"1e999", b'["\\ud800"]'],
    ids=["utf8", "surrogate", "inf", "nested"],
)
def test_the_reader_refuses_invalid_json_in_members_nothing_reads(extra: bytes) -> None:
    raw = b'{"extra": ' + extra + b", " + line()[1:]
    with pytest.raises(InvalidRecord, match="not valid JSON"):
        read_record(raw)


def test_a_record_gives_the_shell_what_it_routes_by_and_honours_the_size_limit() -> None:
    raw = line(customer_id="c1")
    record = read_record(raw, len(raw))
    event = parse_event(raw)
    assert (record.session_id, record.type, record.customer_id, record.occurred_at) == (
        event.session_id,
        event.type,
        event.customer_id,
        event.occurred_at,
    )
    with pytest.raises(InvalidRecord, match=f"over the {len(raw) - 1}-byte limit"):
        read_record(raw, len(raw) - 1)  # the shell's limit, below the contract's
