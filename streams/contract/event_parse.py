"""Reading storefront events from bytes: Python's face of the contract's one reader.

The reader is native (native/src/read.rs): every record gives either the event or the reason
it is refused, and the rules (ids, times, amounts, currencies, quantities, discount codes)
are written there only. tests/fixtures/contract_cases.json holds them, for cargo test and
pytest alike.

* ``read_record``: a native ``Record``, which the detection core takes as it is and which
  carries what a shell routes by (session, type, customer, time).
* ``parse_event``: the same reading, as the Python ``Event`` (decoded from the JSON the reader
  writes, ``streams.contract.native.read_json``, not checked again).
* ``parse_amount``, ``parse_currency``, ``parse_optional_id``: the contract's field rules for
  the readers of other shapes (products, REES46).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

import msgspec
import orjson

from streams.contract import native
from streams.contract.errors import InvalidRecord, UnknownEventType
from streams.contract.events import MAX_RECORD_BYTES, Event
from streams.contract.native import Record, Refused

_decode = msgspec.json.Decoder(Event).decode
_encode = msgspec.json.Encoder().encode


def read_record(raw: bytes, max_bytes: int = MAX_RECORD_BYTES) -> Record:
    """One record through the contract's reader.

    Raises ``InvalidRecord`` (reason in ``.reason``) for a record that breaks the contract and
    ``UnknownEventType`` for a well-formed record of an unknown ``type``; nothing else,
    whatever the bytes.
    """
    read = native.read(raw, max_bytes)
    if type(read) is Record:  # not isinstance: a hot path, and Record has no subclasses
        return read
    raise _refusal(cast("Refused", read))  # read gives one or the other


def parse_event(raw: bytes | str, max_bytes: int = MAX_RECORD_BYTES) -> Event:
    """The same reading as ``read_record``, as a Python ``Event`` (decoded from the reader's
    JSON, not checked again); raises as ``read_record`` does."""
    read = native.read_json(raw.encode() if isinstance(raw, str) else raw, max_bytes)
    if isinstance(read, bytes):
        return _decode(read)
    raise _refusal(read)


def canonical_json(raw: bytes, max_bytes: int = MAX_RECORD_BYTES) -> bytes:
    """The record's event in the contract's canonical shape, as the reader writes it (what the
    importer produces for a REES46 row); raises as ``read_record`` does."""
    read = native.canonical(raw, max_bytes)
    if isinstance(read, bytes):
        return read
    raise _refusal(read)


def _refusal(refused: Refused) -> InvalidRecord:
    return (UnknownEventType if refused.unknown_type else InvalidRecord)(refused.reason)


def event_from_dict(data: dict[str, Any]) -> Event:
    """An already-decoded record (a simulated one), through the reader; raises as
    ``parse_event`` does."""
    return parse_event(orjson.dumps(data))


def record_of(event: Event) -> Record:
    """A Python ``Event`` (a REES46 line's, a test's) as the core takes it: msgspec's JSON of
    it (the shape ``read_json`` writes: epoch milliseconds, decimal text, nulls for none)
    through the reader. ``InvalidRecord`` if it breaks the contract."""
    return read_record(_encode(event))


def parse_amount(value: object, label: str) -> Decimal | None:
    """A money amount (text or JSON number) → Decimal; None for absent or "". The contract's
    rule (native): ASCII decimal text, ``-0`` read as ``0``, never negative, at most 28
    significant digits and an exponent within ±28. ``InvalidRecord`` names ``label``."""
    try:
        text = native.field_amount(value, label)
    except ValueError as exc:
        raise InvalidRecord(str(exc)) from None
    return None if text is None else Decimal(text)


def parse_currency(value: object, label: str) -> str | None:
    """An ISO 4217 code, upper-cased; None for absent or "". ``InvalidRecord`` names ``label``."""
    try:
        return native.field_currency(value, label)
    except ValueError as exc:
        raise InvalidRecord(str(exc)) from None


def parse_optional_id(value: object, label: str) -> str | None:
    """An optional id: None for absent or ""; else at most 256 characters (an integer reads as
    its digits). ``InvalidRecord`` names ``label``."""
    try:
        return native.field_id(value, label)
    except ValueError as exc:
        raise InvalidRecord(str(exc)) from None
