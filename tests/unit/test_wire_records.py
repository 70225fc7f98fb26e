"""The wire records validated in Python (docs/architecture.md, Wire records): each reads back
what it writes, and refuses what it is not with a one-line reason naming the field."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from senders.adapters.consents import Consent, ConsentUpdate, parse_consent_record
from senders.messages.sealed import seal
from senders.messages.short_links import LinkRecord
from senders.messages.tokens import (
    ClickToken,
    OpenToken,
    make_click_token,
    make_open_token,
    read_click_token,
    read_open_token,
)
from senders.messages.unsubscribe import UnsubscribeToken, make_token, read_token
from streams.contract.consent_history import ConsentEntry, consents_record
from streams.contract.consent_record import ConsentRecord, parse_consent_value
from streams.contract.erasure import Done, Erasure, parse_done, parse_erasure
from streams.contract.errors import InvalidRecord
from streams.contract.events import MAX_EVENT_MS, MIN_EVENT_MS

AT = "2024-03-02T17:40:00.123Z"
AT_MS = 1_709_401_200_123
SECRET = b"s" * 32


def consent(**fields: Any) -> bytes:
    return orjson.dumps({"status": "opted_out", "recorded_at": AT, **fields})


# -- the consents value: the mirror's hot path ----------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (None, consent(), "a consent record needs its key customer_id:channel"),
        (b"cust-1", consent(), "consent key must be customer_id:channel with channel sms or"),
        (b"cust-1:fax", consent(), "consent key must be customer_id:channel"),
        (b"cust-1:sms", b"{", "consent record is not valid JSON"),
        (b"cust-1:sms", b"[1]", "consent record must be a JSON object"),
        (b"cust-1:sms", consent(status="maybe"), "consent status must be opted_in or opted_out"),
        (b"cust-1:sms", b'{"status":"opted_in"}', "recorded_at is required"),
        (
            b"cust-1:sms",
            consent(recorded_at=1e12),
            "recorded_at must be an RFC 3339 string or epoch milliseconds",
        ),
        (b"cust-1:sms", consent(recorded_at=0), "recorded_at is outside 2000..2100"),
        (b"cust-1:sms", consent(recorded_at="yesterday"), "recorded_at must be RFC 3339"),
    ],
)
def test_what_is_not_a_consent_record_says_why_in_one_line(
    key: bytes | None, value: bytes, reason: str
) -> None:
    with pytest.raises(InvalidRecord) as refused:
        parse_consent_record(key, value)
    assert refused.value.reason.startswith(reason)
    assert "\n" not in refused.value.reason


def test_the_mirror_reads_the_key_and_the_statement_and_ignores_the_rest() -> None:
    value = consent(source=7, evidence=[1], customer_id=5, channel="fax", unknown={"a": 1})
    assert parse_consent_record(b"cust:1:sms", value) == ConsentUpdate(
        "cust:1", "sms", Consent("opted_out", AT_MS, "")
    )
    assert parse_consent_record(b"cust-1:email", None) == ConsentUpdate("cust-1", "email", None)
    assert parse_consent_value(consent(evidence=3)).evidence == {}


def test_a_consents_record_is_written_as_before_and_reads_back() -> None:
    entry = ConsentEntry("cust-1", "sms", "opted_in", "checkout", AT_MS, {"form": "é", "n": None})
    key, value = consents_record(entry)
    assert key == b"cust-1:sms"
    assert value == (
        b'{"customer_id":"cust-1","channel":"sms","status":"opted_in","source":"checkout",'
        b'"recorded_at":"2024-03-02T17:40:00.123Z","evidence":{"form":"\xc3\xa9","n":null}}'
    )
    assert parse_consent_value(value) == ConsentRecord(
        customer_id="cust-1",
        channel="sms",
        status="opted_in",
        source="checkout",
        recorded_at_ms=AT_MS,
        evidence={"form": "é", "n": None},
    )


@given(
    status=st.sampled_from(["opted_in", "opted_out"]),
    at=st.integers(MIN_EVENT_MS, MAX_EVENT_MS - 1),
    source=st.text(max_size=20),
    # evidence arrives decoded by orjson (an import line, a webhook, a consents record), which
    # reads an integer past 64 bits as a float: a record never holds a wider one
    evidence=st.dictionaries(
        st.text(max_size=8), st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8)
    ),
)
def test_every_consents_value_written_reads_back_the_same(
    status: Any, at: int, source: str, evidence: dict[str, Any]
) -> None:
    record = ConsentRecord(status=status, recorded_at_ms=at, source=source, evidence=evidence)
    assert parse_consent_value(record.to_json()) == record


def test_a_time_is_the_rule_when_read_and_the_callers_own_when_built() -> None:
    built = ConsentRecord(status="opted_in", recorded_at_ms=1)  # a test's, a clock's
    assert built.recorded_at_ms == 1
    with pytest.raises(InvalidRecord, match=r"recorded_at is outside 2000\.\.2100"):
        parse_consent_value(built.to_json())


# -- erasures --------------------------------------------------------------------------------


def test_an_erasure_built_positionally_says_its_state_and_a_read_one_must() -> None:
    erasure = Erasure("sub-1", "er-1", AT_MS, "gdpr", "c1")
    assert erasure.state == "open"
    assert erasure.closed(AT_MS + 1).state == "closed"
    assert orjson.loads(erasure.to_json())["state"] == "open"
    stateless = {k: v for k, v in orjson.loads(erasure.to_json()).items() if k != "state"}
    with pytest.raises(InvalidRecord, match=r"^an erasure's state is open or closed$"):
        parse_erasure(b"sub-1", orjson.dumps(stateless))
    with pytest.raises(InvalidRecord, match=r"^an erasure is not valid JSON$"):
        parse_erasure(b"sub-1", b"")


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"part": "nope"}, "an erasure confirmation needs subject, request_id and part"),
        ({"subject": 1}, "an erasure confirmation needs subject, request_id and part"),
        ({"partition": "3"}, "an erasure confirmation's partition is a number"),
        ({"partition": True}, "an erasure confirmation's partition is a number"),
        ({"counts": {"sessions": "2"}}, "an erasure confirmation's counts are numbers"),
        ({"at": None}, "at is required"),
    ],
)
def test_what_is_not_a_confirmation_says_why(fields: dict[str, Any], reason: str) -> None:
    done = {"subject": "sub-1", "request_id": "er-1", "part": "senders", "at": AT, **fields}
    with pytest.raises(InvalidRecord) as refused:
        parse_done(orjson.dumps(done))
    assert refused.value.reason == reason


def test_a_confirmation_without_a_partition_writes_none() -> None:
    done = Done("sub-1", "er-1", "journeys", AT_MS, counts={"states": 2})
    assert orjson.loads(done.to_json()) == {
        "subject": "sub-1", "request_id": "er-1", "part": "journeys", "at": AT,
        "counts": {"states": 2},
    }  # fmt: skip
    assert parse_done(done.to_json()) == done


# -- short links and tokens ------------------------------------------------------------------


def test_a_short_link_record_refuses_what_it_is_not_in_one_line() -> None:
    record = LinkRecord("https://s.example/a", "c1", "st", "cmd", "sms", 1_900_000_000_000)
    assert record.to_json() == orjson.dumps(record.model_dump())
    assert LinkRecord.from_json(record.to_json().decode()) == record
    for raw, reason in (
        (b"nope", "short link record is not valid JSON"),
        (b"[]", "short link record must be a JSON object"),
        (b'{"url": "x"}', "short link record is malformed"),
        (record.to_json().replace(b'"c1"', b"1"), "short link record is malformed"),
    ):
        with pytest.raises(InvalidRecord) as refused:
            LinkRecord.from_json(raw)
        assert refused.value.reason == reason


def test_a_token_payload_reads_back_and_anything_else_is_malformed() -> None:
    unsubscribe = UnsubscribeToken("c1", "email", "st", 2_000)
    assert read_token(SECRET, make_token(SECRET, unsubscribe), 1_000) == unsubscribe
    click = ClickToken("c1", "st", "cmd", "https://shop.example/cart", 2_000)
    assert read_click_token(SECRET, make_click_token(SECRET, click), 1_000) == click
    opened = OpenToken("c1", "st", "cmd", 2_000)
    assert read_open_token(SECRET, make_open_token(SECRET, opened), 1_000) == opened
    with pytest.raises(InvalidRecord, match=r"^open token payload is malformed$"):
        read_open_token(SECRET, make_click_token(SECRET, click), 1_000)
    for payload in (b"{", b'["c1","email","st","2000"]', b'["c1","email","st"]'):
        with pytest.raises(InvalidRecord, match=r"^unsubscribe token payload is malformed$"):
            read_token(SECRET, seal(SECRET, payload), 1_000)
    with pytest.raises(InvalidRecord, match=r"^unsubscribe token has expired$"):
        read_token(SECRET, make_token(SECRET, unsubscribe), 2_000)
