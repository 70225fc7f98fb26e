"""schemas/event.schema.json against the reader: a record is schema-valid exactly when
``parse_event`` accepts it.

The schema is for storefront developers (their own validators, their CI). The reader is the
authority; what JSON Schema cannot state exactly is listed in the schema's ``$comment`` (the 64 KiB
size, integers written as ``1.0``, offsets that move a boundary day's time across 2000 or 2100,
exponents that fraction digits shift, JSON numbers past ±28 exponents). The generator below keeps
to what the schema can express: small records, no integral floats, whole-hour offsets on the
boundary days, exponent amounts without fraction digits, numbers between 1e-6 and 2**63.
Every case of tests/fixtures/contract_cases.json must come out the same through both, with none of
those restrictions, and so must the examples of docs/integrate.md (its profile and consent through
the journeys' readers).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from streams.contract.errors import InvalidRecord
from streams.contract.event_parse import parse_event
from streams.contract.events import EVENT_TYPES, MAX_RECORD_BYTES
from streams.contract.journey import parse_consent, parse_profile
from tests.support.fuzz import examples

ROOT = Path(__file__).parent.parent.parent
SCHEMA: dict[str, Any] = json.loads((ROOT / "schemas" / "event.schema.json").read_text())
VALIDATOR = Draft202012Validator(SCHEMA)
CASES: dict[str, Any] = json.loads(
    (ROOT / "tests" / "fixtures" / "contract_cases.json").read_text()
)


def base(**changes: object) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": "e1",
        "type": "cart_item_added",
        "occurred_at": "2019-10-01T00:10:00Z",
        "session_id": "s1",
        "product": {"id": "p1", "price": "12.50", "currency": "USD"},
        "quantity": 1,
    }
    record.update(changes)
    return record


def reader_valid(record: object) -> bool:
    try:
        parse_event(json.dumps(record).encode())
    except InvalidRecord:  # UnknownEventType included
        return False
    return True


def schema_valid(record: object) -> bool:
    return VALIDATOR.is_valid(record)


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(SCHEMA["properties"]["type"]["enum"]) == EVENT_TYPES


def contract_records() -> list[tuple[dict[str, Any], bool]]:
    times = CASES["times"]
    amounts = CASES["amounts"]
    out = [(base(occurred_at=t), True) for t, _ in times["accepted"]]
    out += [(base(occurred_at=t), False) for t, _ in times["refused"]]
    out += [(base(occurred_at=ms), True) for ms in CASES["epoch_ms"]["accepted"]]
    out += [(base(occurred_at=ms), False) for ms in CASES["epoch_ms"]["refused"]]
    for text, ok in [(a, True) for a, _ in amounts["accepted"]] + [
        (a, False) for a, _ in amounts["refused"]
    ]:
        out.append((base(product={"id": "p1", "price": text}), ok))
        out.append((base(type="order_completed", product=None, order={"value": text}), ok))
    return out


@pytest.mark.parametrize(("record", "accepted"), contract_records())
def test_every_contract_case_is_judged_alike_by_the_schema_and_the_reader(
    record: dict[str, Any], accepted: bool
) -> None:
    assert reader_valid(record) is accepted
    assert schema_valid(record) is accepted


# --- the generator: valid records, and near-valid ones with one to three fields spoiled ---------

BOUNDARY_DAYS = ["2000-01-01", "2099-12-31", "1999-12-31", "2100-01-01"]
dates = st.one_of(
    st.builds(
        "{}-{:02d}-{:02d}".format,
        st.sampled_from([1999, 2000, 2019, 2020, 2024, 2099, 2100]),
        st.integers(0, 13),
        st.sampled_from([0, 1, 28, 29, 30, 31, 32]),
    ),
    st.sampled_from(BOUNDARY_DAYS),
)
clock = st.builds(
    "{}{:02d}:{:02d}:{:02d}{}".format,
    st.sampled_from(["T", "t", " ", "_"]),
    st.sampled_from([0, 1, 5, 9, 14, 22, 23, 24]),
    st.sampled_from([0, 30, 59, 60]),
    st.sampled_from([0, 59, 60]),
    st.sampled_from(["", ".", ".1", ".123", ".1234567", ",5", "." + "1" * 25]),
)
whole_offsets = st.sampled_from(["Z", "z", "+00:00", "-00:00", "+01:00", "-05:00", "+23:00"])
offsets = st.one_of(
    whole_offsets, st.sampled_from(["", "+05:30", "-09:45", "+24:00", "+0200", "+02", " Z"])
)


@st.composite
def times(draw: st.DrawFn) -> object:
    date = draw(dates)
    # Where the schema only approximates (its $comment, item 3): whole hours on the boundary days,
    # and no offset at all on the days outside the range.
    if date in BOUNDARY_DAYS[2:]:
        offset = draw(st.sampled_from(["Z", "", "+00:00"]))
    elif date in BOUNDARY_DAYS[:2]:
        offset = draw(whole_offsets)
    else:
        offset = draw(offsets)
    text = date + draw(clock) + offset
    return draw(st.sampled_from([text, text, text, text + "\n", " " + text]))


epoch_ms = st.one_of(
    st.sampled_from([946684799999, 946684800000, 4102444799999, 4102444800000, 1569888000]),
    st.integers(10**12, 5 * 10**12),
    st.sampled_from([1569888000000.5, -1, 0, True]),
)


@st.composite
def plain_amounts(draw: st.DrawFn) -> str:
    sign = draw(st.sampled_from(["", "", "+", "-"]))
    whole = draw(st.one_of(st.from_regex(r"[0-9]{0,31}", fullmatch=True), st.just("0" * 29)))
    fraction = draw(st.one_of(st.from_regex(r"[0-9]{0,31}", fullmatch=True), st.just("0" * 28)))
    point = draw(st.booleans())
    mantissa = whole + ("." + fraction if point else "")
    # An exponent only after a mantissa without fraction digits (the schema's $comment, item 4).
    if not fraction or not point:
        mantissa += draw(
            st.sampled_from(["", "", "", "e5", "E-7", "e+28", "e-28", "e29", "e-29", "e+0028", "e"])
        )
    return sign + mantissa


amounts = st.one_of(
    plain_amounts(),
    st.sampled_from(["9" * 28, "9" * 29, "1" + "0" * 28, "0.0000000", "007.5", "1.50E2"]),
    st.sampled_from(["", " 1", "1 ", "1_000", "1,5", "NaN", "inf", "-Infinity", "0x1", "\u0661"]),
    st.integers(-10, 2**63),
    st.floats(min_value=1e-6, max_value=1e15),
    st.floats(max_value=-1e-6, min_value=-1e15),
    st.sampled_from([None, True, 0, 0.0, -0.0, [], {}]),
)


ids = st.one_of(
    st.sampled_from(["e1", "x" * 256, "x" * 257, "é" * 256, "é" * 257, ""]),
    st.text(max_size=4),
    st.integers(-(2**63), 2**64 - 1),
    st.sampled_from([-(2**63) - 1, 2**64, None, True, 1.5, [], {}]),
)
texts = st.one_of(st.none(), st.text(max_size=5), st.sampled_from([1, True, []]))
currencies = st.one_of(
    st.sampled_from(["USD", "usd", "eUr", "", None, "US", "USDX", "U$D", "ÄÖÜ", "USD\n", 840])
)
quantities = st.one_of(
    st.integers(-2, 4),
    st.sampled_from([2**63 - 1, 2**63, None, 2.5, True, "2", []]),
)
products = st.fixed_dictionaries(
    {},
    optional={
        "id": ids,
        "name": texts,
        "price": amounts,
        "currency": currencies,
        "url": texts,
        "image_url": texts,
        "category": texts,
    },
)
valid = st.fixed_dictionaries(
    {
        "event_id": st.sampled_from(["e1", "e2", 7]),
        "type": st.sampled_from(sorted(EVENT_TYPES)),
        "occurred_at": st.sampled_from(["2019-10-01T00:10:00.250Z", 1569888600250]),
        "session_id": st.sampled_from(["s1", "s2"]),
        "product": st.fixed_dictionaries(
            {"id": st.sampled_from(["p1", "p2"])},
            optional={"price": st.sampled_from(["12.50", "0", 3]), "currency": st.just("USD")},
        ),
    },
    optional={
        "customer_id": st.sampled_from(["c1", "", None]),
        "store_id": st.sampled_from(["store-1", ""]),
        "quantity": st.integers(1, 3),
        "cart": st.fixed_dictionaries({}, optional={"id": st.just("c1"), "url": st.just("u")}),
        "order": st.fixed_dictionaries(
            {}, optional={"id": st.just("o1"), "value": st.just("10.00")}
        ),
        "extra": st.just({"anything": [1, None]}),
    },
)
spoilers: dict[str, st.SearchStrategy[Any]] = {
    "event_id": ids,
    "session_id": ids,
    "customer_id": ids,
    "store_id": ids,
    "type": st.sampled_from([*sorted(EVENT_TYPES), "other", "Page_Viewed", "", None, 3]),
    "occurred_at": st.one_of(times(), epoch_ms, st.sampled_from([None, "", 1569888000000.5])),
    "product": st.one_of(products, st.sampled_from([None, "p1", [], 3])),
    "quantity": quantities,
    "cart": st.one_of(
        st.fixed_dictionaries({}, optional={"id": ids, "url": texts}),
        st.sampled_from([None, "c", 3, []]),
    ),
    "order": st.one_of(
        st.fixed_dictionaries({}, optional={"id": ids, "value": amounts, "currency": currencies}),
        st.sampled_from([None, "o", []]),
    ),
}


@st.composite
def records(draw: st.DrawFn) -> object:
    if draw(st.integers(0, 49)) == 0:
        return draw(st.sampled_from([[], "event", 3, None, [{"event_id": "e1"}]]))
    record: dict[str, Any] = draw(valid)
    for key in draw(st.lists(st.sampled_from(sorted(spoilers)), max_size=3, unique=True)):
        value = draw(st.one_of(st.just(...), spoilers[key]))
        if value is ...:
            record.pop(key, None)
        else:
            record[key] = value
    return record


@pytest.mark.fuzz
@settings(max_examples=examples(1500), suppress_health_check=[HealthCheck.too_slow])
@given(records())
def test_a_record_is_schema_valid_exactly_when_the_reader_accepts_it(record: object) -> None:
    raw = json.dumps(record).encode()
    assert len(raw) < MAX_RECORD_BYTES
    accepted = reader_valid(record)
    event("accepted" if accepted else "refused")
    assert schema_valid(record) is accepted, (raw, accepted)


def documented_examples() -> list[dict[str, Any]]:
    """The JSON examples of docs/integrate.md."""
    text = (ROOT / "docs" / "integrate.md").read_text()
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.S)]


def test_the_integration_guide_shows_every_event_type_a_profile_and_a_consent() -> None:
    examples = documented_examples()
    events = [e for e in examples if "type" in e]
    assert {e["type"] for e in events} == EVENT_TYPES
    for record in events:
        assert schema_valid(record), record
        assert parse_event(json.dumps(record).encode()).type == record["type"]
    consents = [e for e in examples if "status" in e]
    profiles = [e for e in examples if "type" not in e and "status" not in e]
    assert consents
    assert profiles
    for record in consents:
        key = f"{record['customer_id']}:{record['channel']}".encode()
        assert parse_consent(key, json.dumps(record).encode()).status == record["status"]
    for record in profiles:
        profile = parse_profile(None, json.dumps(record).encode())
        assert profile.phone == record["phone"]
        assert profile.existing_customer
