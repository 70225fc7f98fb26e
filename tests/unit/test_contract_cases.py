"""The event contract's golden cases, from the table cargo test reads too.

tests/fixtures/contract_cases.json lists whole records, accepted (with their canonical JSON) and
refused (with the reason text), the spellings of times and amounts, and cart values as
Python's decimal context computes them. The rules are written once, in the native reader
(native/src/read.rs, text.rs, money.rs); its own tests read the same table. Here each case goes
through every way an event comes in: ``read_record``, ``parse_event``, the REES46 CSV reader and
the detection core's cart value.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.contract.errors import InvalidRecord, UnknownEventType
from streams.contract.event_parse import canonical_json, parse_event, read_record
from streams.core.detection import Detector, DetectorConfig
from streams.offline.sources import read_rees46
from tests.support.abandonments import Abandonment
from tests.support.events import cart_event

CASES: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "fixtures" / "contract_cases.json").read_text()
)
TIMES_OK: list[tuple[str, int]] = [tuple(c) for c in CASES["times"]["accepted"]]  # type: ignore[misc]
TIMES_BAD: list[tuple[str, str]] = [tuple(c) for c in CASES["times"]["refused"]]  # type: ignore[misc]
AMOUNTS_OK: list[tuple[str, str]] = [tuple(c) for c in CASES["amounts"]["accepted"]]  # type: ignore[misc]
AMOUNTS_BAD: list[tuple[str, str]] = [tuple(c) for c in CASES["amounts"]["refused"]]  # type: ignore[misc]
RECORDS_OK: list[dict[str, Any]] = CASES["records"]["accepted"]
RECORDS_BAD: list[dict[str, Any]] = CASES["records"]["refused"]
CART_VALUES: list[dict[str, Any]] = CASES["cart_values"]
I64_MAX = 2**63 - 1

HEADER = (
    "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n"
)


def order(value: str) -> bytes:
    return cart_event(type="order_completed", product=None, order={"id": "o1", "value": value})


def rees46(tmp_path: Path, event_time: str, price: str) -> tuple[Any, str | None]:
    path = tmp_path / "cases.csv"
    path.write_text(f'{HEADER}"{event_time}",purchase,1002524,2,,apple,"{price}",1,s1\n')
    (row,) = read_rees46(path)
    return row.event, row.reason


def as_rees46_time(text: str) -> str | None:
    """A UTC time of the table in the exports' spelling (``2019-10-01 00:10:00 UTC``)."""
    if len(text) < 20 or text[10] not in "Tt " or not text.endswith(("Z", "z")):
        return None
    return f"{text[:10]} {text[11:-1]} UTC"


@pytest.mark.parametrize(("text", "ms"), TIMES_OK)
def test_an_accepted_time_reads_the_same_everywhere(text: str, ms: int, tmp_path: Path) -> None:
    raw = cart_event(occurred_at=text)
    assert parse_event(raw).occurred_at == ms
    assert read_record(raw).occurred_at == ms
    csv_time = as_rees46_time(text)
    if csv_time is not None:
        event, reason = rees46(tmp_path, csv_time, "1")
        assert reason is None
        assert event.occurred_at == ms


@pytest.mark.parametrize(("text", "reason"), TIMES_BAD)
def test_a_refused_time_is_refused_everywhere_with_its_reason(
    text: str, reason: str, tmp_path: Path
) -> None:
    raw = cart_event(occurred_at=text)
    with pytest.raises(InvalidRecord) as caught:
        parse_event(raw)
    assert caught.value.reason.startswith(f"occurred_at {reason}")
    csv_time = as_rees46_time(text)
    if csv_time is not None:
        event, csv_reason = rees46(tmp_path, csv_time, "1")
        assert event is None
        assert csv_reason is not None
        assert csv_reason.startswith("event_time")


@pytest.mark.parametrize("ms", CASES["epoch_ms"]["accepted"])
def test_accepted_epoch_milliseconds(ms: int) -> None:
    raw = cart_event(occurred_at=ms)
    assert parse_event(raw).occurred_at == ms


@pytest.mark.parametrize("ms", CASES["epoch_ms"]["refused"])
def test_refused_epoch_milliseconds(ms: int) -> None:
    raw = cart_event(occurred_at=ms)
    with pytest.raises(InvalidRecord, match=r"occurred_at .*is outside 2000\.\.2100"):
        parse_event(raw)


@pytest.mark.parametrize(("text", "canonical"), AMOUNTS_OK)
def test_an_accepted_amount_reads_the_same_everywhere(
    text: str, canonical: str, tmp_path: Path
) -> None:
    raw = cart_event(product={"id": "p1", "price": text})
    product = parse_event(raw).product
    assert product is not None
    assert str(product.price) == canonical
    assert type(product.price) is Decimal
    assert orjson.loads(canonical_json(raw))["product"]["price"] == canonical
    placed = parse_event(order(text)).order
    assert placed is not None
    assert str(placed.value) == canonical
    event, reason = rees46(tmp_path, "2019-10-01 00:10:00 UTC", text)
    assert reason is None
    assert str(event.product.price) == str(event.order.value) == canonical


@pytest.mark.parametrize(("text", "reason"), AMOUNTS_BAD)
def test_a_refused_amount_is_refused_everywhere_with_its_reason(
    text: str, reason: str, tmp_path: Path
) -> None:
    raw = cart_event(product={"id": "p1", "price": text})
    with pytest.raises(InvalidRecord) as caught:
        parse_event(raw)
    assert caught.value.reason.startswith(f"product.price {reason}")
    with pytest.raises(InvalidRecord) as caught:
        parse_event(order(text))
    assert caught.value.reason.startswith(f"order.value {reason}")
    if text == text.strip():  # CSV fields are trimmed
        event, csv_reason = rees46(tmp_path, "2019-10-01 00:10:00 UTC", text)
        assert event is None
        assert csv_reason is not None
        assert csv_reason.startswith(f"price {reason}")


def record_bytes(case: dict[str, Any]) -> bytes:
    raw: bytes = case["record"].encode()
    return raw.ljust(case.get("padded_to", 0), b" ")


@pytest.mark.parametrize("case", RECORDS_OK, ids=range(len(RECORDS_OK)))
def test_an_accepted_record_reads_as_its_canonical_json(case: dict[str, Any]) -> None:
    raw = record_bytes(case)
    canonical = case["canonical"].encode()
    assert canonical_json(raw) == canonical
    read_record(raw)  # what detection reads of it, the same reading
    event = parse_event(raw)
    assert parse_event(canonical) == event


@pytest.mark.parametrize("case", RECORDS_BAD, ids=range(len(RECORDS_BAD)))
def test_a_refused_record_is_refused_with_its_reason(case: dict[str, Any]) -> None:
    expected = UnknownEventType if case.get("unknown_type") else InvalidRecord
    for read in (read_record, parse_event, canonical_json):
        with pytest.raises(InvalidRecord) as caught:
            read(record_bytes(case))
        assert type(caught.value) is expected
        assert caught.value.reason == case["reason"]


@pytest.mark.parametrize("case", CART_VALUES, ids=range(len(CART_VALUES)))
def test_the_core_values_a_cart_as_python_decimal_does(case: dict[str, Any]) -> None:
    detector = Detector(DetectorConfig(), track_changes=False)
    n = 0
    for line, (price, quantity) in enumerate(case["lines"]):
        left = int(quantity)
        while left:  # one event carries at most 2**63 - 1
            n += 1
            added = min(left, I64_MAX)
            left -= added
            product = {"id": f"p{line}", "price": price}
            detector.take(
                read_record(cart_event(event_id=f"e{n}", product=product, quantity=added))
            )
    (closed,) = detector.flush()
    value = Abandonment.from_json(closed.json).cart_value
    assert str(value) == case["value"]
    total = None
    for price, quantity in case["lines"]:
        total = (total or Decimal(0)) + Decimal(price) * int(quantity)
    assert str(total) == case["value"]  # the table is Python's own arithmetic
