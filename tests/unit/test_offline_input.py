"""``cartpulse detect`` (``streams.offline.detect.detect_file``) and ``cartpulse journeys``'
orders (``streams.offline.journeys.read_inputs``) against hostile input files."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import orjson

from streams.contract.journey import OrderIn
from streams.core.detection import DetectorConfig
from streams.core.journey_inputs import JourneyInput
from streams.offline.detect import DetectSummary, detect_file
from streams.offline.journeys import JourneyFiles, JourneySummary, read_inputs
from streams.offline.sources import Format, read_rees46

HEADER = (
    "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n"
)


def detect(path: Path, fmt: Format) -> tuple[list[dict[str, object]], list[str], DetectSummary]:
    out, rejected, summary = io.BytesIO(), [], DetectSummary()

    def reject(where: str, line: bytes, reason: str) -> None:
        rejected.append(f"{where}: {reason}")

    detect_file(path, fmt, DetectorConfig(), out, summary, reject, flush=True)
    return [orjson.loads(line) for line in out.getvalue().splitlines()], rejected, summary


def test_a_far_future_csv_row_is_refused_and_moves_no_watermark(tmp_path: Path) -> None:
    """One row dated 9999 used to close every open period at once: the shopper below buys six
    minutes after carting, so no period of theirs may be reported abandoned."""
    path = tmp_path / "p.csv"
    path.write_text(
        HEADER
        + "2019-10-01 00:00:00 UTC,view,1,2,,apple,10.00,1,s1\n"
        + "2019-10-01 00:01:00 UTC,cart,1,2,,apple,10.00,1,s1\n"
        + "9999-12-31 00:00:00 UTC,view,9,2,,x,1.00,2,s2\n"
        + "2019-10-01 00:07:00 UTC,purchase,1,2,,apple,10.00,1,s1\n"
    )
    abandonments, rejected, summary = detect(path, "rees46")
    assert abandonments == []
    assert rejected == ["p.csv:4: event_time is outside 2000..2100 (seconds, not milliseconds?)"]
    assert (summary.events, summary.invalid) == (3, 1)


def test_a_purchase_priced_minus_zero_is_an_order_in_csv_and_jsonl(tmp_path: Path) -> None:
    """``-0`` is zero: it used to crash detect (JSONL) and lose the order (CSV)."""
    csv = tmp_path / "p.csv"
    csv.write_text(
        HEADER
        + "2019-10-01 00:01:00 UTC,cart,1,2,,apple,-0,1,s1\n"
        + "2019-10-01 00:07:00 UTC,purchase,1,2,,apple,-0,1,s1\n"
    )
    assert detect(csv, "rees46")[:2] == ([], [])
    jsonl = tmp_path / "p.jsonl"
    base = {"session_id": "s1", "product": {"id": "1", "price": "-0"}}
    lines = [
        base | {"event_id": "e1", "type": "cart_item_added", "occurred_at": "2019-10-01T00:01:00Z"},
        base
        | {
            "event_id": "e2",
            "type": "order_completed",
            "occurred_at": "2019-10-01T00:07:00Z",
            "order": {"id": "o1", "value": "-0.00"},
        },
        # A cart left with a -0 price (written as the canonical 0) and a numeric -0.0.
        base | {"event_id": "e3", "type": "cart_item_added", "occurred_at": "2019-10-02T00:00:00Z"},
        base
        | {
            "event_id": "e4",
            "type": "cart_item_added",
            "occurred_at": "2019-10-02T00:00:01Z",
            "product": {"id": "2", "price": -0.0},
        },
    ]
    jsonl.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    abandonments, rejected, _ = detect(jsonl, "jsonl")
    assert rejected == []
    (cart,) = abandonments
    items = cart["cart"]["items"]  # type: ignore[index]
    assert [(i["product_id"], i["price"]) for i in items] == [("1", "0"), ("2", "0.0")]


def test_journeys_take_a_csv_exports_orders_as_its_import_writes_them(tmp_path: Path) -> None:
    """``cartpulse journeys --orders`` reads what ``detect`` reads: the orders of a REES46
    export are its purchase rows as ``cartpulse import`` writes them (each CSV line was refused
    as JSON, and no order was taken). A bad row is refused with its reason, a row of an
    unknown type passed over; the other rows are no orders."""
    csv = tmp_path / "p.csv"
    csv.write_text(
        HEADER
        + "2019-10-01 00:00:00 UTC,view,1,2,,apple,10.00,7,s1\n"
        + "2019-10-01 00:07:00 UTC,purchase,1,2,,apple,10.00,7,s1\n"
        + "2019-10-01 00:08:00 UTC,purchase,1,2,,apple,ten,7,s1\n"
        + "2019-10-01 00:09:00 UTC,wishlist,1,2,,apple,10.00,7,s1\n"
    )
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_bytes(b"".join(r.payload + b"\n" for r in read_rees46(csv) if r.payload))
    abandonments = tmp_path / "none.jsonl"
    abandonments.write_bytes(b"")

    def read(orders: Path) -> tuple[list[JourneyInput], list[str], JourneySummary]:
        rejected, summary = [], JourneySummary()

        def reject(where: str, line: bytes, reason: str) -> None:
            rejected.append(f"{where}: {reason}")

        files = JourneyFiles(abandonments, orders=orders)
        return read_inputs(files, summary, reject), rejected, summary

    (order,), refused, summary = read(csv)
    assert isinstance(order, OrderIn) and order.customer_id == "7"
    assert order.value == Decimal("10.00")
    assert len(refused) == 1 and refused[0].startswith("p.csv:4: ")
    assert (summary.inputs["orders"], summary.invalid) == (1, 1)
    assert read(jsonl)[0] == [order]
