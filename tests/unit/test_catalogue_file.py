"""Catalogue files for ``cartpulse journeys --products`` and ``import --format products``:
JSONL product records, and the catalogue derived from a REES46 file."""

from __future__ import annotations

import gzip
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from streams.contract.errors import InvalidRecord
from streams.contract.products import ProductVersion
from streams.offline.catalogue_file import read_products, rees46_name
from tests.conftest import ROOT

SAMPLE = ROOT / "data" / "rees46" / "multicategory-2019-10-01-head.csv"
HEADER = (
    "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
)


class Rejected:
    def __init__(self) -> None:
        self.lines: list[tuple[str, bytes, str]] = []

    def __call__(self, where: str, line: bytes, reason: str) -> None:
        self.lines.append((where, line, reason))


def test_jsonl_records_in_file_order_and_bad_lines_rejected_with_their_reason(
    tmp_path: Path,
) -> None:
    path = tmp_path / "catalogue.jsonl"
    path.write_bytes(
        b'{"product_id": "p1", "price": "80.00", "updated_at": "2026-01-01T10:00:00Z"}\n'
        b"\n"
        b'{"product_id": "p1", "in_stock": false, "updated_at": 1767348000000}\n'
        b'{"price": "1.00", "updated_at": 1767348000000}\n'
        b"not json\r\n"
    )
    rejected = Rejected()
    versions = read_products(path, rejected)
    assert versions == [
        ProductVersion(product_id="p1", price=Decimal("80.00"), updated_ms=1_767_261_600_000),
        ProductVersion(product_id="p1", in_stock=False, updated_ms=1_767_348_000_000),
    ]
    assert [(where, reason.split(":")[0]) for where, _, reason in rejected.lines] == [
        ("catalogue.jsonl:4", "product_id is required (in the record or as its key)"),
        ("catalogue.jsonl:5", "not valid JSON"),
    ]
    assert rejected.lines[1][1] == b"not json"


def test_a_rees46_file_gives_a_version_per_product_each_time_its_price_changes(
    tmp_path: Path,
) -> None:
    rows = (
        f"{HEADER}\n"
        "2019-10-01 00:00:00 UTC,view,1,9,computers.notebook,lenovo,251.74,7,s1\n"
        "2019-10-01 00:01:00 UTC,purchase,1,9,computers.notebook,lenovo,251.740,7,s1\n"
        "2019-10-01 00:02:00 UTC,view,1,9,computers.notebook,lenovo,239.00,7,s1\n"
        "2019-10-01 00:03:00 UTC,view,1,9,computers.notebook,lenovo,,7,s1\n"
        "2019-10-01 00:04:00 UTC,view,1,9,computers.notebook,lenovo,x,7,s1\n"
        "2019-10-01 00:05:00 UTC,view,1,9,computers.notebook,lenovo,251.74,7,s1\n"
    )
    path = tmp_path / "oct.csv.gz"  # gzipped, as every command reads them
    path.write_bytes(gzip.compress(rows.encode()))
    rejected = Rejected()
    versions = read_products(path, rejected)
    assert [(v.updated_ms, v.price) for v in versions] == [
        (1_569_888_000_000, Decimal("251.74")),  # 251.740 is the same price
        (1_569_888_120_000, Decimal("239.00")),  # no price says nothing
        (1_569_888_300_000, Decimal("251.74")),
    ]
    assert {(v.product_id, v.name, v.in_stock, v.store_id) for v in versions} == {
        ("1", "lenovo notebook", True, None)
    }
    assert [where for where, _, _ in rejected.lines] == ["oct.csv.gz:6"]


def test_a_csv_that_is_not_a_rees46_export_is_refused_whole(tmp_path: Path) -> None:
    path = tmp_path / "products.csv"
    path.write_text("product_id,price\np1,1.00\n")
    with pytest.raises(InvalidRecord, match="not a REES46 / Open CDP export"):
        read_products(path, Rejected())


def test_the_sample_gives_each_product_once_and_reads_back_as_the_topic_holds_it() -> None:
    rejected = Rejected()
    versions = read_products(SAMPLE, rejected)
    assert not rejected.lines
    assert len(versions) == len({v.product_id for v in versions}) == 6_493
    first = versions[0]
    assert orjson.loads(first.to_json()) == {
        "product_id": "44600062",
        "name": "shiseido",
        "price": "35.79",
        "in_stock": True,
        "updated_at": "2019-10-01T00:00:00.000Z",
    }


@pytest.mark.parametrize(
    ("brand", "category", "name"),
    [
        ("lenovo", "computers.notebook", "lenovo notebook"),
        (None, "appliances.environment.water_heater", "water heater"),
        ("aqua", None, "aqua"),
        (None, None, None),
        ("", "", None),
    ],
)
def test_rees46_names(brand: str | None, category: str | None, name: str | None) -> None:
    assert rees46_name(brand, category) == name
