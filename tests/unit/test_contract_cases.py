"""The contract's times and amounts, from the table cargo test reads too, through every reader.

tests/fixtures/contract_cases.json lists accepted spellings (with what they read as) and
refused ones (with the reason). The rules are written once, in the native core
(native/src/text.rs, native/src/money.rs); its own tests read the same table. Here each case goes
through every way an event comes in: the native fast reader (``streams._native.read_event``),
``parse_event`` and the REES46 CSV reader, so no reader can accept what another refuses.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams import _native
from streams.errors import InvalidRecord
from streams.models.event_parse import parse_event
from streams.sources import read_rees46
from tests.support.events import cart_event

CASES: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "fixtures" / "contract_cases.json").read_text()
)
TIMES_OK: list[tuple[str, int]] = [tuple(c) for c in CASES["times"]["accepted"]]  # type: ignore[misc]
TIMES_BAD: list[tuple[str, str]] = [tuple(c) for c in CASES["times"]["refused"]]  # type: ignore[misc]
AMOUNTS_OK: list[tuple[str, str]] = [tuple(c) for c in CASES["amounts"]["accepted"]]  # type: ignore[misc]
AMOUNTS_BAD: list[tuple[str, str]] = [tuple(c) for c in CASES["amounts"]["refused"]]  # type: ignore[misc]

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
    native = _native.read_event(raw)
    assert native is not None
    assert parse_event(native).occurred_at == ms
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
    assert _native.read_event(raw) is None
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
    assert _native.read_event(raw) is not None


@pytest.mark.parametrize("ms", CASES["epoch_ms"]["refused"])
def test_refused_epoch_milliseconds(ms: int) -> None:
    raw = cart_event(occurred_at=ms)
    with pytest.raises(InvalidRecord, match=r"occurred_at .*is outside 2000\.\.2100"):
        parse_event(raw)
    assert _native.read_event(raw) is None


@pytest.mark.parametrize(("text", "canonical"), AMOUNTS_OK)
def test_an_accepted_amount_reads_the_same_everywhere(
    text: str, canonical: str, tmp_path: Path
) -> None:
    raw = cart_event(product={"id": "p1", "price": text})
    product = parse_event(raw).product
    assert product is not None
    assert str(product.price) == canonical
    assert type(product.price) is Decimal
    native = _native.read_event(raw)
    assert native is not None
    assert orjson.loads(native)["product"]["price"] == canonical
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
    assert _native.read_event(raw) is None
    with pytest.raises(InvalidRecord) as caught:
        parse_event(order(text))
    assert caught.value.reason.startswith(f"order.value {reason}")
    if text == text.strip():  # CSV fields are trimmed
        event, csv_reason = rees46(tmp_path, "2019-10-01 00:10:00 UTC", text)
        assert event is None
        assert csv_reason is not None
        assert csv_reason.startswith(f"price {reason}")
