"""``cartpulse import --format products`` against the real local Kafka broker: catalogue files
(JSONL product records, and the catalogue a REES46 file implies) → the products topic."""

from __future__ import annotations

import csv
from pathlib import Path

import orjson
import pytest

from streams.runtime.kafka import ORIGINAL_TOPIC_HEADER, REASON_HEADER, SOURCE_HEADER
from streams.runtime.settings import Settings
from tests.conftest import ROOT, consume_all
from tests.support.cli import run_cli
from tests.support.events import write_jsonl

pytestmark = pytest.mark.integration

SAMPLE = ROOT / "data" / "rees46" / "multicategory-2019-10-01-head.csv"
HEADER = (
    "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
)


def product(**fields: object) -> bytes:
    return orjson.dumps({"updated_at": "2026-01-01T10:00:00Z", **fields})


async def test_product_records_land_keyed_by_product_id_and_bad_lines_in_the_dlq(
    settings: Settings, tmp_path: Path
) -> None:
    lines = [
        product(product_id="p1", name="Chair", price="80.00", currency="eur", inventory=3),
        b'{"product_id": "p2",',
        product(product_id="p1", price="64.00", updated_at="2026-01-02T10:00:00Z"),
        product(product_id="p3", price="12,50"),
        product(product_id=1307067, in_stock=False),
        orjson.dumps({"product_id": "p4"}),
    ]
    path = write_jsonl(tmp_path / "catalogue.jsonl", lines)

    result = run_cli(settings, "import", "--format", "products", str(path))
    assert result.returncode == 1, result.stderr  # done, but some lines were rejected
    assert "imported 3 product versions, invalid 3" in result.stdout
    for lineno, reason in [
        (2, "not valid JSON"),
        (4, "price is not a decimal"),
        (6, "updated_at is required"),
    ]:
        assert f"catalogue.jsonl:{lineno}: {reason}" in result.stderr

    prefix = settings.topic_prefix
    records = await consume_all(settings, f"{prefix}products", 3)
    values = [orjson.loads(r.value) for r in records]
    assert all(r.key == v["product_id"].encode() for r, v in zip(records, values, strict=True))
    first, second = (v for v in values if v["product_id"] == "p1")  # one partition: in order
    assert first == {
        "product_id": "p1",
        "name": "Chair",
        "price": "80.00",
        "currency": "EUR",
        "in_stock": True,
        "inventory": 3,
        "updated_at": "2026-01-01T10:00:00.000Z",
    }
    assert second["price"] == "64.00"
    assert second["updated_at"] == "2026-01-02T10:00:00.000Z"
    assert {"product_id": "1307067", "in_stock": False} in [
        {k: v[k] for k in ("product_id", "in_stock")} for v in values
    ]

    dead = await consume_all(settings, f"{prefix}products.dlq", 3)
    by_source = {dict(r.headers)[SOURCE_HEADER].decode(): dict(r.headers) for r in dead}
    assert sorted(by_source) == ["catalogue.jsonl:2", "catalogue.jsonl:4", "catalogue.jsonl:6"]
    assert b"price is not a decimal" in by_source["catalogue.jsonl:4"][REASON_HEADER]
    assert by_source["catalogue.jsonl:2"][ORIGINAL_TOPIC_HEADER] == f"{prefix}products".encode()
    assert {r.value for r in dead} == {lines[1], lines[3], lines[5]}


async def test_a_rees46_file_gives_a_version_per_price_change(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "oct.csv"
    path.write_text(
        f"{HEADER}\n"
        "2019-10-01 00:00:00 UTC,view,1,9,computers.notebook,lenovo,251.74,7,s1\n"
        "2019-10-01 00:01:00 UTC,cart,1,9,computers.notebook,lenovo,251.74,7,s1\n"
        "2019-10-01 00:02:00 UTC,view,2,9,,shiseido,35.79,8,s2\n"
        "2019-10-01 00:03:00 UTC,wishlist,1,9,computers.notebook,lenovo,9.99,7,s1\n"
        "2019-10-01 00:04:00 UTC,view,1,9,computers.notebook,lenovo,239.00,8,s2\n"
        "2019-10-01 00:05:00 UTC,view,3,9,appliances.environment.water_heater,,33.20,8,s2\n"
    )
    result = run_cli(settings, "import", "--format", "products", str(path), "--json")
    assert result.returncode == 1, result.stderr  # the wishlist row is not an event
    summary = orjson.loads(result.stdout)
    assert (summary["imported"], summary["invalid"]) == (4, 1)
    assert "oct.csv:5: unknown event_type 'wishlist'" in result.stderr

    records = await consume_all(settings, f"{settings.topic_prefix}products", 4)
    values = sorted((orjson.loads(r.value) for r in records), key=lambda v: v["updated_at"])
    assert values == [
        {
            "product_id": "1",
            "name": "lenovo notebook",
            "price": "251.74",
            "in_stock": True,
            "updated_at": "2019-10-01T00:00:00.000Z",
        },
        {
            "product_id": "2",
            "name": "shiseido",
            "price": "35.79",
            "in_stock": True,
            "updated_at": "2019-10-01T00:02:00.000Z",
        },
        {
            "product_id": "1",
            "name": "lenovo notebook",
            "price": "239.00",
            "in_stock": True,
            "updated_at": "2019-10-01T00:04:00.000Z",
        },
        {
            "product_id": "3",
            "name": "water heater",
            "price": "33.20",
            "in_stock": True,
            "updated_at": "2019-10-01T00:05:00.000Z",
        },
    ]
    (dead,) = await consume_all(settings, f"{settings.topic_prefix}products.dlq", 1)
    assert dict(dead.headers)[SOURCE_HEADER] == b"oct.csv:5"


async def test_the_rees46_sample_gives_one_version_per_product(settings: Settings) -> None:
    with SAMPLE.open() as handle:
        products = {row["product_id"] for row in csv.DictReader(handle)}
    result = run_cli(settings, "import", "--format", "products", str(SAMPLE))
    assert result.returncode == 0, result.stderr
    assert f"imported {len(products):,} product versions, invalid 0" in result.stdout
    records = await consume_all(settings, f"{settings.topic_prefix}products", len(products))
    assert {r.key.decode() for r in records} == products  # its prices never change
    assert len(records) == len(products)


def test_pacing_flags_are_refused_for_a_catalogue(settings: Settings, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "catalogue.jsonl", [product(product_id="p1")])
    result = run_cli(settings, "import", "--format", "products", "--rate", "10", str(path))
    assert result.returncode == 2
    assert "--rate and --speedup pace events" in result.stderr
