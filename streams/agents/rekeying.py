"""Consents and send results re-keyed by customer id, for the journeys.

``consents`` (keyed ``customer_id:channel``) and ``send.results`` (keyed ``command_id``) are
not partitioned by customer, so the rekey agent (streams/agents/journeys_app.py) writes each
record again to ``journey.inputs`` under its customer's id, its source topic and original key
in two headers; the journeys read them back with ``origin``. A record of no customer is not
routed (counted).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

import orjson

from streams.contract.consent_history import NUMBER_PREFIX
from streams.contract.erasure import ERASED_PREFIX, SUPPRESSED_PREFIX

SOURCE_HEADER: Final = "cartpulse.source"
KEY_HEADER: Final = "cartpulse.key"
# ``consents`` subjects that are no customer (the senders' concern): a number's own records (a
# STOP from a number), an erasure's retired id and its suppression list
NOT_CUSTOMERS: Final = tuple(p.encode() for p in (NUMBER_PREFIX, ERASED_PREFIX, SUPPRESSED_PREFIX))
# A record's headers as Faust hands them: a list of pairs, or a mapping.
InputHeaders = Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None


def rekey(topic_kind: str, key: bytes | None, value: bytes | None) -> bytes | None:
    """The customer id a consents / send.results record belongs to, or None (not routable)."""
    if topic_kind == "consents":
        if not key:
            return None
        customer, sep, _ = key.rpartition(b":")
        if not sep or not customer or customer.startswith(NOT_CUSTOMERS):
            return None
        return customer
    try:
        data = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    found = data.get("customer_id") if isinstance(data, dict) else None
    return found.encode() if isinstance(found, str) and found else None


def origin(headers: InputHeaders) -> tuple[str, bytes | None]:
    """The source topic and original key of a re-keyed record."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    found: dict[str, bytes] = dict(pairs)
    source = found.get(SOURCE_HEADER, b"").decode("utf-8", "replace")
    return source, found.get(KEY_HEADER)
