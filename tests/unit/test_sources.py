from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from streams.contract.errors import InvalidRecord
from streams.offline.sources import detect_format, read_events, read_jsonl, read_rees46

HEADER = (
    "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n"
)
ROWS = [
    "2019-10-01 00:08:50 UTC,view,1002524,2053013555631882655,electronics.smartphone,apple,515.67,1,s1",
    "2019-10-01 00:09:33 UTC,cart,1002524,2053013555631882655,electronics.smartphone,apple,515.67,1,s1",
    "2019-10-01 00:09:40 UTC,remove_from_cart,1002524,2053013555631882655,,,515.67,1,s1",
    "2019-10-01 00:10:08 UTC,purchase,1002524,2053013555631882655,,,515.67,,s1",
]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_rees46_types_are_mapped(tmp_path: Path) -> None:
    path = write(tmp_path, "oct.csv", HEADER + "\n".join(ROWS) + "\n")
    records = list(read_rees46(path))
    events = [r.event for r in records]
    assert all(r.reason is None for r in records)
    assert [e.type for e in events if e] == [
        "product_viewed",
        "cart_item_added",
        "cart_item_removed",
        "order_completed",
    ]
    view, added, _, purchase = (e for e in events if e)
    assert view.session_id == "s1"
    assert view.customer_id == "1"
    assert view.occurred_at == 1_569_888_530_000
    assert view.product is not None
    assert view.product.id == "1002524"
    assert view.product.price == Decimal("515.67")
    assert view.product.category == "electronics.smartphone"
    assert view.product.name == "apple"
    assert added.quantity == 1
    assert purchase.customer_id is None  # empty user_id
    assert purchase.order is not None
    assert purchase.order.value == Decimal("515.67")
    assert [r.source for r in records] == ["oct.csv:2", "oct.csv:3", "oct.csv:4", "oct.csv:5"]


def test_rees46_payload_is_a_contract_event(tmp_path: Path) -> None:
    path = write(tmp_path, "oct.csv", HEADER + ROWS[1] + "\n")
    (record,) = read_rees46(path)
    assert record.payload is not None
    payload = orjson.loads(record.payload)
    assert payload["type"] == "cart_item_added"
    assert payload["occurred_at"] == "2019-10-01T00:09:33.000Z"
    assert payload["product"]["price"] == "515.67"


def test_rees46_short_header_format(tmp_path: Path) -> None:
    """The cosmetics-shop exports have no category or brand columns."""
    text = "event_time,event_type,product_id,price,user_id,user_session\n"
    text += "2022-12-01 00:00:00 UTC,remove_from_cart,5712790,6.27,576802932,abc\n"
    (record,) = read_rees46(write(tmp_path, "dec.csv", text))
    assert record.event is not None
    assert record.event.type == "cart_item_removed"
    assert record.event.product is not None
    assert record.event.product.category is None


def test_rees46_event_ids_are_deterministic_and_distinct(tmp_path: Path) -> None:
    text = HEADER + ROWS[0] + "\n" + ROWS[0] + "\n"  # two identical lines stay two events
    first = [r.event.event_id for r in read_rees46(write(tmp_path, "a.csv", text)) if r.event]
    again = [r.event.event_id for r in read_rees46(write(tmp_path, "a.csv", text)) if r.event]
    other_dir = tmp_path / "elsewhere"
    other_dir.mkdir()
    moved = [r.event.event_id for r in read_rees46(write(other_dir, "a.csv", text)) if r.event]
    renamed = [r.event.event_id for r in read_rees46(write(tmp_path, "b.csv", text)) if r.event]
    assert len(set(first)) == 2
    assert first == again == moved  # the file's name counts, not where it lies
    assert set(first).isdisjoint(renamed)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("2019-10-01 00:00:00 UTC,wishlist,1,2,,,1.0,1,s", "unknown event_type 'wishlist'"),
        ("2019-10-01 00:00:00,view,1,2,,,1.0,1,s", "event_time must look like"),
        ("2019-13-01 00:00:00 UTC,view,1,2,,,1.0,1,s", "event_time is not a time"),
        ("2019-10-01 00:00:00 UTC,view,1,2,,,1.0,1,", "user_session is empty"),
        ("2019-10-01 00:00:00 UTC,view,,2,,,1.0,1,s", "product_id is empty"),
        ("2019-10-01 00:00:00 UTC,view,1,2,,,cheap,1,s", "price is not a decimal"),
        ("2019-10-01 00:00:00 UTC,view,1,2,,,-3,1,s", "price must be a finite amount"),
        ("2019-10-01 00:00:00 UTC,view,1,2,,,1E+30,1,s", "price must have at most 28"),
        ("2019-10-01 00:00:00 UTC,view,1", "expected 9 fields, got 3"),
    ],
)
def test_rees46_bad_rows_are_rejected_with_a_reason(tmp_path: Path, row: str, reason: str) -> None:
    path = write(tmp_path, "bad.csv", HEADER + ROWS[0] + "\n" + row + "\n")
    good, bad = read_rees46(path)
    assert good.event is not None
    assert bad.event is None
    assert bad.source == "bad.csv:3"
    assert bad.reason is not None
    assert reason in bad.reason


def test_rees46_file_without_the_header_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "x.csv", "a,b,c\n1,2,3\n")
    with pytest.raises(InvalidRecord, match="not a REES46 / Open CDP export"):
        list(read_rees46(path))


def test_jsonl_broken_lines_are_reported_and_good_lines_kept(tmp_path: Path) -> None:
    good = {
        "event_id": "e1",
        "type": "page_viewed",
        "occurred_at": "2019-10-01T00:00:00Z",
        "session_id": "s1",
    }
    lines = [
        orjson.dumps(good).decode(),
        "{not json",
        orjson.dumps({**good, "session_id": None}).decode(),
        "",
        orjson.dumps({**good, "occurred_at": "soon"}).decode(),
        orjson.dumps({**good, "type": "teleported"}).decode(),
        orjson.dumps({**good, "cart": {"url": "x" * 70_000}}).decode(),
        orjson.dumps({**good, "event_id": "e2"}).decode(),
    ]
    records = list(read_jsonl(write(tmp_path, "in.jsonl", "\n".join(lines) + "\n")))
    assert [r.source for r in records if r.event] == ["in.jsonl:1", "in.jsonl:8"]
    rejected = {r.source: r.reason for r in records if r.event is None}
    assert list(rejected) == ["in.jsonl:2", "in.jsonl:3", "in.jsonl:5", "in.jsonl:6", "in.jsonl:7"]
    assert "not valid JSON" in str(rejected["in.jsonl:2"])
    assert "session_id is required" in str(rejected["in.jsonl:3"])
    assert "occurred_at" in str(rejected["in.jsonl:5"])
    assert "unknown type" in str(rejected["in.jsonl:6"])
    assert "byte limit" in str(rejected["in.jsonl:7"])
    kept = records[0]
    assert kept.payload == lines[0].encode()  # JSONL is forwarded as the storefront sent it


def test_format_by_extension() -> None:
    assert detect_format(Path("x.csv")) == "rees46"
    assert detect_format(Path("x.CSV")) == "rees46"
    assert detect_format(Path("x.jsonl")) == "jsonl"
    assert detect_format(Path("x")) == "jsonl"


def test_read_events_dispatches(tmp_path: Path) -> None:
    path = write(tmp_path, "oct.csv", HEADER + ROWS[0] + "\n")
    assert [r.event.type for r in read_events(path, "rees46") if r.event] == ["product_viewed"]
