"""Product records (``parse_product``) and the catalogue of their versions (``Catalogue``)."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.contract.errors import InvalidRecord
from streams.contract.events import MAX_ID_LENGTH, MAX_RECORD_BYTES
from streams.contract.products import ProductVersion, parse_product
from streams.core.catalogue import Catalogue

BASE = {
    "product_id": "p1",
    "store_id": "s1",
    "name": "Chair",
    "url": "https://shop.example.com/p1",
    "image_url": "https://shop.example.com/p1.jpg",
    "price": "80.00",
    "currency": "eur",
    "in_stock": True,
    "inventory": 3,
    "updated_at": "2026-01-01T10:00:00Z",
}
T0 = 1_767_261_600_000  # 2026-01-01T10:00:00Z


def raw(**changes: object) -> bytes:
    record = {**BASE, **changes}
    return orjson.dumps({k: v for k, v in record.items() if v is not ...})


def version(product_id: str = "p1", at: int = T0, **fields: object) -> ProductVersion:
    return ProductVersion(product_id=product_id, updated_ms=at, **fields)  # type: ignore[arg-type]  # test data


def test_a_full_record() -> None:
    parsed = parse_product(b"p1", raw())
    assert parsed == ProductVersion(
        product_id="p1",
        store_id="s1",
        name="Chair",
        url="https://shop.example.com/p1",
        image_url="https://shop.example.com/p1.jpg",
        price=Decimal("80.00"),
        currency="EUR",
        in_stock=True,
        inventory=3,
        updated_ms=T0,
    )


def test_the_least_a_record_holds_and_its_defaults() -> None:
    parsed = parse_product(b"p9", orjson.dumps({"updated_at": T0}))
    assert parsed == ProductVersion(product_id="p9", updated_ms=T0)
    assert parsed is not None
    assert parsed.in_stock  # a product is in stock unless the record says otherwise


def test_a_tombstone_is_none() -> None:
    assert parse_product(b"p1", None) is None


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (None, {"product_id": "p1"}),
        (b"p1", {"product_id": None}),
        (b"p1", {"product_id": ""}),
        (b"p1", {"product_id": "p1"}),
    ],
)
def test_product_id_from_the_field_or_the_key(key: bytes | None, value: dict[str, object]) -> None:
    parsed = parse_product(key, raw(**value))
    assert parsed is not None
    assert parsed.product_id == "p1"


def test_a_numeric_product_id_reads_as_text() -> None:
    parsed = parse_product(b"1307067", raw(product_id=1307067))
    assert parsed is not None
    assert parsed.product_id == "1307067"


@pytest.mark.parametrize(
    ("key", "changes", "reason"),
    [
        (None, {"product_id": ...}, "product_id is required"),
        (b"", {"product_id": None}, "product_id is required"),
        (b"\xff", {"product_id": ...}, "key (product_id) is not UTF-8"),
        (b"p1", {"product_id": ["p1"]}, "product_id must be a string"),
        (b"p1", {"product_id": True}, "product_id must be a string"),
        (None, {"product_id": "x" * (MAX_ID_LENGTH + 1)}, "product_id is longer than 256"),
        (b"p2", {}, "product_id 'p1' differs from the record key 'p2'"),
        (b"p1", {"store_id": {"id": 1}}, "store_id must be a string"),
        (b"p1", {"store_id": "s" * (MAX_ID_LENGTH + 1)}, "store_id is longer than 256"),
        (b"p1", {"name": 7}, "name must be a string"),
        (b"p1", {"url": ["u"]}, "url must be a string"),
        (b"p1", {"image_url": False}, "image_url must be a string"),
        (b"p1", {"price": "-1.00"}, "price must be a finite amount >= 0"),
        (b"p1", {"price": "12,50"}, "price is not a decimal"),
        (b"p1", {"price": True}, "price must be a decimal number or string"),
        (b"p1", {"price": "1e99"}, "price must have at most 28 significant"),
        (b"p1", {"currency": "euro"}, "currency must be an ISO 4217 code"),
        (b"p1", {"currency": 978}, "currency must be an ISO 4217 code"),
        (b"p1", {"in_stock": "yes"}, "in_stock must be true or false"),
        (b"p1", {"in_stock": 1}, "in_stock must be true or false"),
        (b"p1", {"inventory": 2.5}, "inventory must be a 64-bit integer"),
        (b"p1", {"inventory": True}, "inventory must be a 64-bit integer"),
        (b"p1", {"inventory": 2**63}, "inventory must be a 64-bit integer"),
        (b"p1", {"updated_at": ...}, "updated_at is required"),
        (b"p1", {"updated_at": "yesterday"}, "updated_at must be RFC 3339"),
        (b"p1", {"updated_at": "1999-12-31T23:59:59Z"}, "updated_at is outside"),
        (b"p1", {"updated_at": 1.5}, "updated_at must be an RFC 3339 string or epoch milliseconds"),
    ],
)
def test_every_bad_field_is_refused_with_its_reason(
    key: bytes | None, changes: dict[str, object], reason: str
) -> None:
    with pytest.raises(InvalidRecord) as refused:
        parse_product(key, raw(**changes))
    assert reason in refused.value.reason


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b'{"product_id": "p1",', "not valid JSON"),
        (b"[1, 2]", "a product record must be a JSON object"),
        (b'"p1"', "a product record must be a JSON object"),
    ],
)
def test_a_record_that_is_not_an_object_is_refused(value: bytes, reason: str) -> None:
    with pytest.raises(InvalidRecord, match=reason):
        parse_product(b"p1", value)


def test_a_record_over_the_size_limit_is_refused_before_it_is_read() -> None:
    big = raw(name="x" * MAX_RECORD_BYTES)
    with pytest.raises(InvalidRecord, match=f"over the {MAX_RECORD_BYTES}-byte limit"):
        parse_product(b"p1", big)
    with pytest.raises(InvalidRecord, match="over the 100-byte limit"):
        parse_product(b"p1", raw(), max_bytes=100)


def test_negative_inventory_is_an_oversold_product_not_an_error() -> None:
    parsed = parse_product(b"p1", raw(inventory=-2))
    assert parsed is not None
    assert parsed.inventory == -2


def test_the_topic_shape() -> None:
    parsed = parse_product(b"p1", raw(price=80, updated_at="2026-01-01T11:00:00.5+01:00"))
    assert parsed is not None
    assert orjson.loads(parsed.to_json()) == {
        **BASE,
        "price": "80",
        "currency": "EUR",
        "updated_at": "2026-01-01T10:00:00.500Z",
    }
    least = ProductVersion(product_id="p9", in_stock=False, updated_ms=T0)
    assert least.to_dict() == {
        "product_id": "p9",
        "in_stock": False,
        "updated_at": "2026-01-01T10:00:00.000Z",
    }


amounts = st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False)
versions = st.builds(
    ProductVersion,
    product_id=st.text(min_size=1, max_size=20),
    store_id=st.none() | st.text(min_size=1, max_size=10),
    name=st.none() | st.text(min_size=1, max_size=30),
    url=st.none() | st.text(min_size=1, max_size=30),
    image_url=st.none() | st.text(min_size=1, max_size=30),
    price=st.none() | amounts,
    currency=st.none() | st.sampled_from(["USD", "EUR", "GBP"]),
    in_stock=st.booleans(),
    inventory=st.none() | st.integers(-(2**63), 2**63 - 1),
    updated_ms=st.integers(946_684_800_000, 4_102_444_799_999),
)


@given(versions)
def test_a_version_reads_back_as_itself(original: ProductVersion) -> None:
    key = original.product_id.encode()
    assert parse_product(key, original.to_json()) == original
    assert parse_product(None, original.to_json()) == original


def test_as_of_takes_the_newest_version_at_or_before_the_moment() -> None:
    catalogue = Catalogue()
    first, second = version(at=T0, price=Decimal(10)), version(at=T0 + 1000, price=Decimal(8))
    assert catalogue.add(second)
    assert catalogue.add(first)  # out of order: kept in time order
    assert catalogue.as_of("p1", T0 - 1) is None  # before every version: not known then
    assert catalogue.as_of("p1", T0) is first
    assert catalogue.as_of("p1", T0 + 999) is first
    assert catalogue.as_of("p1", T0 + 1000) is second
    assert catalogue.as_of("p1", T0 + 10**9) is second
    assert catalogue.latest("p1") is second
    assert catalogue.history("p1") == (first, second)
    assert catalogue.as_of("p2", T0) is None
    assert catalogue.latest("p2") is None
    assert catalogue.history("p2") == ()


def test_a_duplicate_changes_nothing_and_a_same_moment_version_replaces() -> None:
    catalogue = Catalogue()
    assert catalogue.add(version(price=Decimal(10)))
    assert not catalogue.add(version(price=Decimal(10)))  # read again: a duplicate
    corrected = version(price=Decimal(9))
    assert catalogue.add(corrected)  # the later record of one moment wins
    assert catalogue.history("p1") == (corrected,)


def test_the_history_keeps_the_newest_versions_only() -> None:
    catalogue = Catalogue(max_versions=3)
    kept = [version(at=T0 + n, inventory=n) for n in range(5)]
    for item in kept:
        assert catalogue.add(item)
    assert catalogue.history("p1") == tuple(kept[2:])
    assert catalogue.as_of("p1", T0 + 1) is None  # its version fell out of the history
    assert catalogue.as_of("p1", T0 + 2) is kept[2]
    assert not catalogue.add(kept[0])  # older than every kept version of a full history
    assert catalogue.add(version(at=T0 + 3, inventory=99))  # within it: replaces
    assert catalogue.latest("p1") == kept[4]


def test_the_default_history_is_16_versions_and_products_are_counted() -> None:
    catalogue = Catalogue()
    for n in range(20):
        catalogue.add(version(at=T0 + n))
    catalogue.add(version("p2"))
    assert len(catalogue.history("p1")) == 16
    assert catalogue.history("p1")[0].updated_ms == T0 + 4
    assert len(catalogue) == 2
    assert [v.product_id for v in catalogue.versions()] == ["p1"] * 16 + ["p2"]
    assert "p2" in catalogue
    assert "p3" not in catalogue
    with pytest.raises(ValueError, match="at least one version"):
        Catalogue(max_versions=0)


@given(st.lists(st.integers(0, 40), max_size=60), st.integers(-1, 45))
def test_as_of_matches_a_scan_of_the_newest_versions(moments: list[int], at: int) -> None:
    catalogue = Catalogue(max_versions=4)
    for moment in moments:
        catalogue.add(version(at=T0 + moment))
    newest = sorted(set(moments))[-4:]
    expected = max((m for m in newest if m <= at), default=None)
    found = catalogue.as_of("p1", T0 + at)
    assert (found and found.updated_ms - T0) == expected
