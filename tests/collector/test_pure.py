"""The collector's pure parts: who sent a request (auth), what it holds (batch), CORS."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streams.collector.auth import Caller, Credentials, Refused, authenticate, sign
from streams.collector.batch import (
    Accepted,
    BadBatch,
    Rejected,
    check_event,
    check_events,
    read_batch,
)
from streams.collector.cors import cors_headers, preflight_headers
from streams.contract.topics import Topic
from tests.support.events import CART_ITEM_ADDED

SHOP = "https://shop.example"
CREDENTIALS = Credentials(
    secrets={"store-1": b"secret-one", "store-2": b"secret-two"},
    pixel_keys={"store-1": b"pk_one"},
    allowed_origins=frozenset({SHOP}),
)
BODY = b'{"event_id": "e1"}'


# --- auth -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("caller", "store"),
    [
        (Caller(authorization="Bearer secret-one"), "store-1"),
        (Caller(authorization="bearer  secret-two "), "store-2"),
        (Caller(signature=sign(b"secret-two", BODY), store="store-2"), "store-2"),
        (Caller(signature=sign(b"secret-one", BODY).upper(), store="store-1"), "store-1"),
        (Caller(pixel_key="pk_one", store="store-1", origin=SHOP), "store-1"),
    ],
)
def test_a_store_is_proved_by_its_token_signature_or_pixel_key(caller: Caller, store: str) -> None:
    assert authenticate(CREDENTIALS, caller, BODY) == store


@pytest.mark.parametrize(
    ("caller", "says"),
    [
        (Caller(), "send Authorization"),
        (Caller(authorization="Bearer nope"), "not any store's"),
        (Caller(authorization="Basic c2VjcmV0LW9uZQ=="), "Bearer <token>"),
        (Caller(authorization="Bearer "), "Bearer <token>"),
        # another store's signature, a signature of another body, an unknown store
        (Caller(signature=sign(b"secret-one", BODY), store="store-2"), "does not match"),
        (Caller(signature=sign(b"secret-one", b"{}"), store="store-1"), "does not match"),
        (Caller(signature=sign(b"\x00" * 32, BODY), store="store-9"), "does not match"),
        (Caller(signature="sha256=zz", store="store-1"), "does not match"),
        (Caller(signature=sign(b"secret-one", BODY)), "X-Cartpulse-Store"),
        # a pixel key: another store's, from an origin not listed, from no origin
        (Caller(pixel_key="pk_one", store="store-2", origin=SHOP), "not this store's"),
        (Caller(pixel_key="pk_one", store="store-1", origin="https://evil.example"), "origin"),
        (Caller(pixel_key="pk_one", store="store-1"), "origin"),
        # a server secret is not a pixel key
        (Caller(pixel_key="secret-one", store="store-1", origin=SHOP), "not this store's"),
    ],
)
def test_anything_else_is_refused_saying_what_to_send(caller: Caller, says: str) -> None:
    with pytest.raises(Refused, match=says):
        authenticate(CREDENTIALS, caller, BODY)


# --- batch ------------------------------------------------------------------------------


def event(**changes: object) -> dict[str, Any]:
    return {**CART_ITEM_ADDED, **changes}


def test_one_object_is_one_event_and_an_array_is_a_batch() -> None:
    assert read_batch(orjson.dumps(event()), 500) == [event()]
    assert read_batch(orjson.dumps([event(), 1]), 500) == [event(), 1]
    assert read_batch(b"[]", 500) == []


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b'{"event_id": ', 400, "not valid JSON"),
        (b"", 400, "not valid JSON"),
        (b'"page_viewed"', 400, "one event"),
        (b"null", 400, "one event"),
        (orjson.dumps([event()] * 3), 413, "3 events in one request, over the limit of 2"),
    ],
)
def test_a_body_that_is_not_events_is_refused_whole(body: bytes, status: int, says: str) -> None:
    with pytest.raises(BadBatch, match=says) as refused:
        read_batch(body, 2)
    assert refused.value.status == status


def test_a_batch_gets_a_verdict_per_event_in_order() -> None:
    items = [
        event(),
        event(event_id="v", type="product_viewed", session_id="s9"),
        "not an event",
        event(session_id=None),
        event(type="cart_emptied"),
        event(store_id="store-2"),
        event(cart={"url": "x" * 70_000}),
        event(occurred_at="2019-10-01 noon"),
    ]

    verdicts = list(check_events(items, "store-1", 64 * 1024))

    assert [v.index for v in verdicts] == list(range(len(items)))
    first, second = verdicts[0], verdicts[1]
    assert isinstance(first, Accepted) and isinstance(second, Accepted)
    assert (first.topic, first.key) == (Topic.CART, b"s1")
    assert (second.topic, second.key) == (Topic.CLICKSTREAM, b"s9")
    assert orjson.loads(first.payload) == event(store_id="store-1")  # filled in
    rejected = [v for v in verdicts if isinstance(v, Rejected)]
    assert [(v.kind, v.topic) for v in rejected] == [
        ("not_object", Topic.CLICKSTREAM),
        ("invalid", Topic.CART),
        ("unknown_type", Topic.CLICKSTREAM),
        ("wrong_store", Topic.CART),
        ("too_large", Topic.CART),
        ("invalid", Topic.CART),
    ]
    assert rejected[0].payload == b'"not an event"'
    assert "session_id is required" in rejected[1].reason
    assert "unknown type 'cart_emptied'" in rejected[2].reason
    assert rejected[3].reason == "store_id 'store-2' is not the authenticated store 'store-1'"
    assert "over the 65536-byte limit" in rejected[4].reason


@pytest.mark.parametrize("stated", ["store-1", "", None])
def test_an_event_of_the_store_or_of_none_is_accepted_as_the_store(stated: object) -> None:
    verdict = check_event(0, event(store_id=stated), "store-1", 64 * 1024)

    assert isinstance(verdict, Accepted)
    assert orjson.loads(verdict.payload)["store_id"] == "store-1"


def test_a_numeric_store_id_is_read_as_its_digits() -> None:
    other = check_event(0, event(store_id=42), "store-1", 64 * 1024)

    assert isinstance(check_event(0, event(store_id=42), "42", 64 * 1024), Accepted)
    assert isinstance(other, Rejected) and other.kind == "wrong_store"


def test_a_store_id_of_another_type_is_the_readers_to_refuse() -> None:
    verdict = check_event(0, event(store_id=["store-1"]), "store-1", 64 * 1024)

    assert isinstance(verdict, Rejected)
    assert (verdict.kind, verdict.reason) == ("invalid", "store_id must be a string")


# --- CORS -------------------------------------------------------------------------------


def test_only_listed_origins_get_cors_headers() -> None:
    allowed = frozenset({SHOP})

    assert cors_headers(SHOP, allowed) == {"Access-Control-Allow-Origin": SHOP, "Vary": "Origin"}
    assert cors_headers("https://evil.example", allowed) == {}
    assert cors_headers(None, allowed) == {}
    assert preflight_headers(SHOP, allowed)["Access-Control-Allow-Methods"] == "POST, OPTIONS"
    assert (
        "X-Cartpulse-Signature" in preflight_headers(SHOP, allowed)["Access-Control-Allow-Headers"]
    )
    assert preflight_headers("https://evil.example", allowed) == {}
