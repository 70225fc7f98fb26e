"""The native fast reader (native/src/event.rs) against ``parse_event``, the authority.

``streams._native.read_event`` returns None for a record it leaves to Python, else the event it
keeps, written back in the contract shape. Whatever it keeps, ``parse_event`` must accept
too, and read as the same event once the fields the native side drops (product.category, cart.id,
order) are dropped from it.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from streams import _native
from streams.errors import InvalidRecord
from streams.models.abandonment import Kind
from streams.models.event_parse import parse_event
from streams.models.events import CartRef, Event
from tests.support.abandonments import abandonment_id
from tests.unit.test_event_parse import records

# The native reader's fields in declaration order: arrays built from them are what a positional
# reader (serde's derived one) would take for objects. The native reader must refuse them.
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


def kept(parsed: Event) -> Event:
    """``parsed`` without what the native reader does not keep."""
    product = parsed.product and msgspec.structs.replace(parsed.product, category=None)
    url = parsed.cart.url if parsed.cart else None
    cart = None if url is None else CartRef(None, url)
    return msgspec.structs.replace(parsed, product=product, cart=cart, order=None)


def check_native(raw: bytes) -> bool:
    """Whether the native reader kept ``raw``; when it did, that the checked parser agrees."""
    native = _native.read_event(raw)
    if native is None:
        return False
    checked = parse_event(raw)  # must not raise: native accepted it
    expected = kept(checked)
    # JSON equality compares every field exactly, prices as text ("7.50" is not "7.5").
    assert orjson.loads(native) == expected.to_dict()
    again = parse_event(native)
    assert again == expected  # types too: int times and quantities, Decimal prices
    assert again.to_dict() == expected.to_dict()
    assert _native.read_event(native) == native  # the written shape reads back unchanged
    return True


@settings(max_examples=1000, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_records())
def test_what_the_native_reader_keeps_the_checked_parser_reads_the_same(raw: bytes) -> None:
    event("native" if check_native(raw) else "left to Python")


def test_a_good_share_of_generated_records_take_the_native_path() -> None:
    taken: list[bool] = []

    @settings(max_examples=300, database=None, derandomize=True)
    @given(raw_records())
    def run(raw: bytes) -> None:
        taken.append(_native.read_event(raw) is not None)

    run()
    # 91 of 300 with this seed: many generated records are invalid, and those must not be.
    assert sum(taken) >= len(taken) // 4, f"{sum(taken)} of {len(taken)} read natively"


T0 = "2019-10-01T00:10:00.250Z"
PLAIN = {"event_id": "e1", "type": "cart_item_added", "occurred_at": T0, "session_id": "s1"}


def line(**changes: object) -> bytes:
    return orjson.dumps({**PLAIN, "product": {"id": "p1"}, **changes})


def test_a_canonical_record_is_read_natively() -> None:
    product = {"id": "p1", "name": 'Mug é\t\x01"\\', "price": "12.50", "url": "https://x/p"}
    raw = line(
        customer_id="c1",
        store_id="st",
        product=product | {"currency": "usd", "category": "mugs"},
        quantity=2,
        cart={"id": "c9", "url": "https://x/c"},
        order={"id": "o1", "value": "10.00", "currency": "EUR"},
    )
    native = _native.read_event(raw)
    assert native is not None
    kept_fields = {"customer_id": "c1", "store_id": "st", "quantity": 2}
    assert orjson.loads(native) == PLAIN | kept_fields | {
        "product": product | {"currency": "USD"},
        "cart": {"url": "https://x/c"},
    }
    assert check_native(raw)


DUPLICATE_ID = b'{"event_id": "e0", ' + line()[1:]


@pytest.mark.parametrize(
    "raw",
    [
        line(event_id=7),
        line(session_id=12),
        line(customer_id=3),
        line(cart={"id": 4}),
        line(product={"id": "p1", "price": 12.5}),
        line(order={"value": 10.5}),
        DUPLICATE_ID,
    ],
)
def test_unusual_but_valid_shapes_are_left_to_python(raw: bytes) -> None:
    parse_event(raw)  # valid
    assert _native.read_event(raw) is None


@pytest.mark.parametrize(
    "raw",
    [
        *(line(product={"id": "p1", "price": p}) for p in ["1e2", "+5", ".5", "9" * 28, "-0"]),
        *(line(occurred_at=T0.replace("T00:10:00.250Z", s)) for s in ["t00:10:00Z", " 00:10:00Z"]),
        *(line(occurred_at=T0.replace(".250Z", s)) for s in [".1Z", ".1234Z", "z", "-00:00"]),
    ],
)
def test_every_spelling_of_a_time_or_amount_is_read_natively_as_python_reads_it(
    raw: bytes,
) -> None:
    """Times and amounts are read by one rule on both sides (native/src/text.rs, money.rs)."""
    assert check_native(raw)


BASE = orjson.dumps({**PLAIN, "type": "page_viewed"})[:-1]


@pytest.mark.parametrize(
    "raw",
    [
        *(line(occurred_at=t) for t in ["2019-02-30T00:00:00Z", "2019-10-01T24:00:00Z"]),
        *(line(occurred_at=t) for t in ["2019-10-01T00:00:60Z", "1999-12-31T23:59:59Z"]),
        *(line(occurred_at=t) for t in [1_569_888_000, 1.5e12, "2019-10-01T00:10:00"]),
        *(line(quantity=q) for q in [0, -1, 1.5, True, 2**63]),
        line(type="product_viewed", product=None),
        line(type="nope"),
        *(line(event_id=i) for i in ["", "x" * 257, "é" * 257, "😀" * 257]),
        *(line(product={"id": "p1", "currency": c}) for c in ["US", "ÄÖÜ", WIDE_USD]),
        *(line(product={"id": "p1", "price": p}) for p in ["-1", "NaN", True, " 1", "1_000"]),
        *(line(occurred_at=T0.replace(".250Z", s)) for s in ["+0200", ",250Z", "Z\x00"]),
        line(occurred_at="2019-W40-2T00:10:00Z"),
        b"not json",
        # Not objects where the contract needs objects (serde reads structs from arrays).
        encode(["e1", "page_viewed", 1_569_888_000_000, "s1", *[None] * 6], True),
        line(product=["p1", None, None, None, None, None, None]),
        line(cart=[None, "https://x/c"]),
        line(order=[None, None, None]),
        # Not JSON as orjson reads it, in values the native reader skips.
        *(BASE + b', "extra": ' + v + b"}" for v in [b'"\\ud800"', b'"\xff"', b"1e999"]),
        BASE + b', "quantity": ["\\ud800"]}',
    ],
)
def test_invalid_records_are_left_to_python(raw: bytes) -> None:
    with pytest.raises(InvalidRecord):
        parse_event(raw)
    assert _native.read_event(raw) is None


def test_a_record_over_64_kib_is_left_to_python() -> None:
    raw = b'{"pad": "' + b"x" * 65_536 + b'", ' + line()[1:]
    with pytest.raises(InvalidRecord, match="over the 65536-byte limit"):
        parse_event(raw)
    assert _native.read_event(raw) is None


@pytest.mark.parametrize("session_id", ["s1", "é", "😀-session", "a\x00b", "x" * 256, "ΣΩ\u2028"])
@pytest.mark.parametrize("kind", ["cart", "browse"])
@pytest.mark.parametrize("deadline", [0, 1_569_888_600_250, 4_102_444_799_999])
def test_abandonment_ids_match(session_id: str, kind: Kind, deadline: int) -> None:
    assert _native.abandonment_id(session_id, kind, deadline) == abandonment_id(
        session_id, kind, deadline
    )


@pytest.mark.parametrize(
    "extra",
    [b'"\xff"', b'"\\ud800"', b"1e999", b'["\\ud800"]'],
    ids=["utf8", "surrogate", "inf", "nested"],
)
def test_parse_event_refuses_what_orjson_refuses_in_members_nothing_reads(extra: bytes) -> None:
    """msgspec alone would skip an unknown member unchecked: the native reader stands before it."""
    raw = b'{"extra": ' + extra + b", " + line()[1:]
    assert _native.read(raw, len(raw)) is None
    with pytest.raises(InvalidRecord, match="not valid JSON"):
        parse_event(raw)


def test_a_record_gives_the_shell_what_it_routes_by_and_honours_the_size_limit() -> None:
    raw = line(customer_id="c1")
    record = _native.read(raw, len(raw))
    assert record is not None
    event = parse_event(raw)
    assert (record.session_id, record.type, record.customer_id, record.occurred_at) == (
        event.session_id,
        event.type,
        event.customer_id,
        event.occurred_at,
    )
    assert _native.read(raw, len(raw) - 1) is None  # the shell's limit, below the contract's
