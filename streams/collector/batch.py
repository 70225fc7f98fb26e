"""What a request carries: one event or a JSON array of them, each checked by the importer's
reader (``streams.contract.event_parse.parse_event``, docs/semantics.md) and by the store the
request was authenticated as. Pure: bytes and a store id in, a verdict per event out.

A request that is not one event or an array of at most ``max_events`` of them is refused whole
(``BadBatch``: 400, or 413 when too large); inside a well-formed request each event stands on
its own: ``Accepted`` (the topic, the ``session_id`` key and the payload to produce) or
``Rejected`` (the reason, the DLQ's topic and the bytes to dead-letter).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from streams.contract.errors import CartpulseError, InvalidRecord, UnknownEventType
from streams.contract.event_parse import parse_event
from streams.contract.topics import Topic, input_topic_for

# Why an event was rejected, as a closed set (the reason itself is free text).
RejectKind = Literal["not_object", "too_large", "unknown_type", "wrong_store", "invalid"]
REJECT_KINDS: Final[tuple[RejectKind, ...]] = (
    "not_object",
    "too_large",
    "unknown_type",
    "wrong_store",
    "invalid",
)


class BadBatch(CartpulseError):
    """The request as a whole cannot be read; nothing in it is taken. ``status`` is the HTTP
    answer (400 or 413) and ``reason`` says what to send instead."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Accepted:
    index: int
    topic: Topic
    key: bytes  # the event's session_id
    payload: bytes


@dataclass(frozen=True, slots=True)
class Rejected:
    index: int
    topic: Topic  # the input topic it was meant for; its DLQ takes it
    kind: RejectKind
    reason: str
    payload: bytes


Verdict = Accepted | Rejected


def read_batch(body: bytes, max_events: int) -> list[Any]:
    """The events of a body: a JSON object is one event, a JSON array a batch of them.

    Raises ``BadBatch`` (400) for a body that is not JSON or neither an object nor an array,
    and (413) for an array of more than ``max_events``.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        detail = exc.args[0] if exc.args else exc
        raise BadBatch(400, f"the body is not valid JSON: {detail}") from None
    if isinstance(data, dict):
        return [data]
    if not isinstance(data, list):
        raise BadBatch(400, "the body must be one event (a JSON object) or a JSON array of them")
    if len(data) > max_events:
        raise BadBatch(413, f"{len(data)} events in one request, over the limit of {max_events}")
    return data


def check_events(items: list[Any], store_id: str, max_bytes: int) -> Iterator[Verdict]:
    """A verdict per item, in order. An event without ``store_id`` gets ``store_id``; one with
    another store's is rejected (``wrong_store``)."""
    for index, item in enumerate(items):
        yield check_event(index, item, store_id, max_bytes)


def check_event(index: int, item: Any, store_id: str, max_bytes: int) -> Verdict:
    """One item's verdict (see ``check_events``); never raises."""
    if not isinstance(item, dict):
        kind: RejectKind = "not_object"
        reason = "an event must be a JSON object"
        return Rejected(index, Topic.CLICKSTREAM, kind, reason, orjson.dumps(item))
    topic = _topic_of(item)
    stated = item.get("store_id")
    if stated is None or stated == "":
        item = {**item, "store_id": store_id}
    elif _is_id(stated) and str(stated) != store_id:
        reason = f"store_id {str(stated)[:64]!r} is not the authenticated store {store_id!r}"
        return Rejected(index, topic, "wrong_store", reason, orjson.dumps(item))
    payload = orjson.dumps(item)  # any other store_id is the reader's to refuse
    try:
        event = parse_event(payload, max_bytes)
    except UnknownEventType as exc:
        return Rejected(index, topic, "unknown_type", exc.reason, payload)
    except InvalidRecord as exc:
        kind = "too_large" if len(payload) > max_bytes else "invalid"
        return Rejected(index, topic, kind, exc.reason, payload)
    return Accepted(index, input_topic_for(event.type), event.session_id.encode(), payload)


def _is_id(value: object) -> bool:
    """A value the reader takes as an id: a string, or an integer (read as its digits)."""
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _topic_of(item: dict[str, Any]) -> Topic:
    """The input topic an item's ``type`` names (the importer's rule for a rejected line)."""
    etype = item.get("type")
    return input_topic_for(etype) if isinstance(etype, str) else Topic.CLICKSTREAM
