"""Reading storefront event files: JSONL in the contract's shape and REES46 / Open CDP CSV.

Readers are pure iterators over lines: each yields a ``SourceRecord`` holding either a valid
``Event`` with the payload to produce, or the reason the line was rejected. They never raise
for a bad line; they raise ``InvalidRecord`` only when a whole file cannot be read (a CSV
without the REES46 header).
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Final, Literal, cast

import orjson

from streams.contract import native
from streams.contract.errors import InvalidRecord
from streams.contract.event_parse import (
    canonical_json,
    parse_amount,
    parse_event,
    parse_optional_id,
)
from streams.contract.events import (
    MAX_RECORD_BYTES,
    Event,
    EventType,
)

Format = Literal["jsonl", "rees46"]

REES46_TYPES: Final[dict[str, EventType]] = {
    "view": "product_viewed",
    "cart": "cart_item_added",
    "remove_from_cart": "cart_item_removed",
    "purchase": "order_completed",
}
REES46_REQUIRED: Final = (
    "event_time",
    "event_type",
    "product_id",
    "price",
    "user_id",
    "user_session",
)


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One line of an input file: a valid event and its payload, or a rejection reason."""

    source: str  # "<file name>:<line number>"
    line: bytes
    event: Event | None
    payload: bytes | None
    reason: str | None


STDIN: Final = Path("-")


def detect_format(path: Path) -> Format:
    """``rees46`` for ``.csv`` (and ``.csv.gz``) files, else ``jsonl`` (standard input too)."""
    name = path.name.lower().removesuffix(".gz")
    return "rees46" if name.endswith(".csv") else "jsonl"


def is_plain_file(path: Path) -> bool:
    """Whether ``path`` is a file read as it is (not standard input, not gzipped)."""
    return path != STDIN and path.suffix.lower() != ".gz"


def require_input(path: Path) -> None:
    """Raise ``FileNotFoundError`` now, before any work, when ``path`` names no file."""
    if path != STDIN and not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))


@contextlib.contextmanager
def open_input(path: Path) -> Iterator[IO[bytes]]:
    """Every command's file input: ``-`` is standard input, a ``.gz`` file is read through
    gzip, anything else as it is. Raises ``OSError`` when the file cannot be opened."""
    if path == STDIN:
        yield sys.stdin.buffer
    elif path.suffix.lower() == ".gz":
        with gzip.open(path, "rb") as handle:
            yield cast(IO[bytes], handle)
    else:
        with path.open("rb") as handle:
            yield handle


def read_events(
    path: Path, fmt: Format, max_bytes: int = MAX_RECORD_BYTES
) -> Iterator[SourceRecord]:
    """Every non-blank line of ``path`` as a ``SourceRecord``, in file order."""
    return read_jsonl(path, max_bytes) if fmt == "jsonl" else read_rees46(path, max_bytes)


def read_lines(path: Path) -> Iterator[tuple[str, bytes]]:
    """Every non-blank line of ``path`` (``-`` and ``.gz`` too), in file order, without its
    line ending, with where it is (``<file name>:<line number>``)."""
    with open_input(path) as handle:
        for lineno, raw in enumerate(handle, start=1):
            line = raw.rstrip(b"\r\n")
            if line.strip():
                yield f"{path.name}:{lineno}", line


def read_jsonl(path: Path, max_bytes: int = MAX_RECORD_BYTES) -> Iterator[SourceRecord]:
    for source, line in read_lines(path):
        try:
            event = parse_event(line, max_bytes)
        except InvalidRecord as exc:
            yield SourceRecord(source, line, None, None, exc.reason)
        else:
            yield SourceRecord(source, line, event, line, None)


def read_rees46(path: Path, max_bytes: int = MAX_RECORD_BYTES) -> Iterator[SourceRecord]:
    with open_input(path) as handle:
        header_raw = handle.readline()
        header = header_raw.decode("utf-8", errors="replace").strip().lstrip("\ufeff").split(",")
        missing = [c for c in REES46_REQUIRED if c not in header]
        if missing:
            raise InvalidRecord(
                f"{path.name}: not a REES46 / Open CDP export: the header lacks "
                f"{', '.join(missing)} (expected event_time,event_type,product_id,"
                "[category_id,category_code,brand,]price,user_id,user_session)"
            )
        columns = {name: i for i, name in enumerate(header)}
        for lineno, raw in enumerate(handle, start=2):
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            source = f"{path.name}:{lineno}"
            try:
                event, canonical = rees46_event(path.name, lineno, line, columns, max_bytes)
            except InvalidRecord as exc:
                yield SourceRecord(source, line, None, None, exc.reason)
            else:
                yield SourceRecord(source, line, event, canonical, None)


_UNKNOWN = re.compile(r"unknown (?:event_)?type '([^']*)'")


def unknown_type_of(reason: str) -> str | None:
    """The type a rejection reason says is unknown (``unknown type 'x'``), else ``None``."""
    found = _UNKNOWN.match(reason)
    return found.group(1) if found else None


def rees46_event_id(file_name: str, lineno: int, line: bytes) -> str:
    """Deterministic id from the file's name, the line number and the line (docs/semantics.md)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(file_name.encode())
    digest.update(b"\x00%d\x00" % lineno)
    digest.update(line)
    return f"rees46-{digest.hexdigest()}"


def rees46_event(
    file_name: str,
    lineno: int,
    line: bytes,
    columns: dict[str, int],
    max_bytes: int = MAX_RECORD_BYTES,
) -> tuple[Event, bytes]:
    """Map one REES46 row to an event and its canonical JSON (the contract's reader writes it),
    or raise ``InvalidRecord`` saying why it can't be."""
    if len(line) > max_bytes:
        raise InvalidRecord(f"line is {len(line)} bytes, over the {max_bytes}-byte limit")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRecord("line is not UTF-8") from None
    try:
        row = next(csv.reader([text]), [])
    except csv.Error as exc:  # a carriage return or NUL inside a line, say
        raise InvalidRecord(f"not a CSV row: {exc}") from None
    if len(row) != len(columns):
        raise InvalidRecord(f"expected {len(columns)} fields, got {len(row)}")

    def col(name: str) -> str:
        index = columns.get(name)
        return row[index].strip() if index is not None else ""

    raw_type = col("event_type")
    etype = REES46_TYPES.get(raw_type)
    if etype is None:
        raise InvalidRecord(
            f"unknown event_type {raw_type[:40]!r} "
            "(expected view, cart, remove_from_cart or purchase)"
        )
    occurred_at = _rees46_time(col("event_time"))
    session_id = col("user_session")
    if not session_id:
        raise InvalidRecord("user_session is empty")
    product_id = col("product_id")
    if not product_id:
        raise InvalidRecord("product_id is empty")
    for name, value in (("user_session", session_id), ("product_id", product_id)):
        parse_optional_id(value, name)  # the contract's id rule: at most 256 characters
    price = _rees46_price(col("price"))
    amount = None if price is None else str(price)
    record = {
        "event_id": rees46_event_id(file_name, lineno, line),
        "type": etype,
        "occurred_at": occurred_at,
        "session_id": session_id,
        "customer_id": col("user_id") or None,
        "product": {
            "id": product_id,
            "name": col("brand") or None,
            "price": amount,
            "category": col("category_code") or None,
        },
        "order": {"value": amount} if etype == "order_completed" else None,
    }
    # The row's fields were checked above with their REES46 names; the reader writes the event.
    canonical = canonical_json(orjson.dumps(record), max_bytes)
    return parse_event(canonical, max_bytes), canonical


def _rees46_time(value: str) -> int:
    """``2019-10-01 00:00:00 UTC`` (the zone is always spelled UTC in these exports) → epoch
    milliseconds, by the contract's own rule (``parse_time``): the same syntax and range as
    every other input format."""
    if not value.endswith(" UTC"):
        raise InvalidRecord(
            f"event_time must look like '2019-10-01 00:00:00 UTC', got {value[:40]!r}"
        )
    try:
        return native.event_time(value[:-4] + "Z")
    except ValueError as exc:
        if str(exc) == native.TIME_RANGE:
            raise InvalidRecord(f"event_time {exc}") from None
        raise InvalidRecord(f"event_time is not a time: {value[:40]!r}") from None


def _rees46_price(value: str) -> Decimal | None:
    return parse_amount(value, "price")
