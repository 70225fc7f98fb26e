"""Product catalogue files: JSONL product records, or a catalogue derived from a REES46 file.

* **JSONL**: one ``products`` record per line, read by ``parse_product`` (its ``product_id``
  from the field: a file has no keys).
* **REES46 / Open CDP CSV** (``.csv``, ``.csv.gz``): its products carry no catalogue of their
  own, so one is derived from the events (``Rees46Catalogue``): a version of a product each
  time its price changes, as of the event's time; named from its brand and the last part of
  its category_code; in stock.

``cartpulse import --format products FILE`` produces either to the ``products`` topic;
``read_products`` gives either as a list (an offline run's catalogue).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from streams.contract.errors import InvalidRecord
from streams.contract.events import MAX_RECORD_BYTES, Event
from streams.contract.products import ProductVersion, parse_product
from streams.offline.output import Reject
from streams.offline.sources import detect_format, read_lines, read_rees46


@dataclass(frozen=True, slots=True)
class ProductLine:
    """One line of a catalogue file: a version, or the reason the line was rejected."""

    source: str  # "<file name>:<line number>"
    line: bytes
    version: ProductVersion | None
    reason: str | None


def read_product_lines(path: Path, max_bytes: int = MAX_RECORD_BYTES) -> Iterator[ProductLine]:
    """Every product line of ``path`` in file order: JSONL records, or the versions derived
    from a REES46 file (by its extension, as every command decides). Raises ``InvalidRecord``
    only for a CSV that is not a REES46 export at all."""
    if detect_format(path) == "rees46":
        deriver = Rees46Catalogue()
        for record in read_rees46(path, max_bytes):
            if record.event is None:
                yield ProductLine(record.source, record.line, None, record.reason)
            elif (version := deriver.take(record.event)) is not None:
                yield ProductLine(record.source, version.to_json(), version, None)
        return
    for source, line in read_lines(path):
        try:
            version = parse_product(None, line, max_bytes)
        except InvalidRecord as exc:
            yield ProductLine(source, line, None, exc.reason)
        else:
            if version is None:  # parse_product reads no tombstone from a line
                continue
            yield ProductLine(source, line, version, None)


def read_products(
    path: Path, reject: Reject, max_bytes: int = MAX_RECORD_BYTES
) -> list[ProductVersion]:
    """Every valid version of a catalogue file, in file order; each bad line goes to
    ``reject(where, line, reason)``. Raises ``InvalidRecord`` as ``read_product_lines``."""
    versions: list[ProductVersion] = []
    for item in read_product_lines(path, max_bytes):
        if item.version is None:
            reject(item.source, item.line, item.reason or "invalid")
        else:
            versions.append(item.version)
    return versions


class Rees46Catalogue:
    """The catalogue REES46 events imply: a version per product each time its price changes.

    The reader puts a REES46 row's brand in ``product.name`` and its category_code in
    ``product.category`` (``streams.offline.sources.rees46_event``); events without a price say
    nothing about the catalogue. Holds the last price of every product seen.
    """

    __slots__ = ("_prices",)

    def __init__(self) -> None:
        self._prices: dict[str, Decimal] = {}

    def take(self, event: Event) -> ProductVersion | None:
        """The version ``event`` implies, or None when its product's price did not change."""
        product = event.product
        if product is None or product.price is None:
            return None
        if self._prices.get(product.id) == product.price:
            return None
        self._prices[product.id] = product.price
        return ProductVersion(
            product_id=product.id,
            store_id=event.store_id,
            name=rees46_name(product.name, product.category),
            price=product.price,
            currency=product.currency,
            in_stock=True,
            updated_ms=event.occurred_at,
        )


def rees46_name(brand: str | None, category_code: str | None) -> str | None:
    """``lenovo`` and ``computers.notebook`` → ``lenovo notebook``; either alone, or None."""
    kind = category_code.rpartition(".")[2].replace("_", " ") if category_code else ""
    return " ".join(part for part in (brand, kind) if part) or None
