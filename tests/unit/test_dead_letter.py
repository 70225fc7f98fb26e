"""Dead letters: one bounded shape wherever they are built, and an import a DLQ cannot stop."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError

from streams.contract.event_parse import parse_event
from streams.contract.topics import TopicCatalogue
from streams.offline.importer import DlqRejects, import_records
from streams.offline.sources import SourceRecord
from streams.runtime.kafka import (
    DLQ_EXCERPT_BYTES,
    MAX_HEADER_TEXT_BYTES,
    ORIGINAL_BYTES_HEADER,
    ORIGINAL_SHA256_HEADER,
    REASON_HEADER,
    SOURCE_HEADER,
    dead_letter,
)
from tests.support.producers import FakeProducer, Sent


def test_a_small_payload_is_kept_whole_with_its_length_and_hash() -> None:
    letter = dead_letter(b"{bad", "not valid JSON", "f.jsonl:3", "t.cart")
    assert letter.value == b"{bad"
    assert dict(letter.headers) == {
        REASON_HEADER: b"not valid JSON",
        SOURCE_HEADER: b"f.jsonl:3",
        "cartpulse.original_topic": b"t.cart",
        ORIGINAL_BYTES_HEADER: b"4",
        ORIGINAL_SHA256_HEADER: hashlib.sha256(b"{bad").hexdigest().encode(),
    }


def test_a_large_payload_and_a_long_reason_are_bounded() -> None:
    payload = "é".encode() * 3_000_000
    letter = dead_letter(payload, "internal error: " + "ü" * 5_000, "t.cart:0:7", "t.cart")
    assert letter.value == payload[:DLQ_EXCERPT_BYTES]
    headers = dict(letter.headers)
    assert headers[ORIGINAL_BYTES_HEADER] == b"6000000"
    assert headers[ORIGINAL_SHA256_HEADER] == hashlib.sha256(payload).hexdigest().encode()
    reason = headers[REASON_HEADER]
    assert len(reason) <= MAX_HEADER_TEXT_BYTES
    assert reason.decode().startswith("internal error: üü")  # cut at a character, not a byte
    assert reason.endswith(b"...")


def test_a_tombstone_is_dead_lettered_as_none() -> None:
    letter = dead_letter(None, "empty", "t.cart:0:1", "t.cart")
    assert letter.value is None
    assert ORIGINAL_BYTES_HEADER not in dict(letter.headers)


class RefusingProducer(FakeProducer):
    """Refuses dead letters at send, or later at delivery, and the event e3 at delivery."""

    def __init__(self) -> None:
        super().__init__()
        self.dead_letters = 0

    def deliver(self, record: Sent, future: asyncio.Future[object]) -> None:
        if record.topic.endswith(".dlq"):
            self.dead_letters += 1
            if self.dead_letters == 1:
                raise MessageSizeTooLargeError("refused at send")
            future.set_exception(KafkaTimeoutError("refused at delivery"))
        elif record.value == line("e3"):
            future.set_exception(KafkaTimeoutError("the broker was away too long"))
        else:
            super().deliver(record, future)


def line(event_id: str) -> bytes:
    return (
        b'{"event_id": "%s", "type": "page_viewed", "occurred_at": 1569888000000, '
        b'"session_id": "s1"}' % event_id.encode()
    )


def valid(n: int) -> SourceRecord:
    raw = line(f"e{n}")
    return SourceRecord(f"f:{n}", raw, parse_event(raw), raw, None)


def invalid(n: int) -> SourceRecord:
    return SourceRecord(f"f:{n}", b"{bad", None, None, "not valid JSON")


@pytest.mark.expect_errors  # streams.offline.importer logs each record Kafka did not take
async def test_records_kafka_does_not_take_are_counted_and_the_import_goes_on() -> None:
    producer, topics = RefusingProducer(), TopicCatalogue("t.")
    records = [valid(1), invalid(2), valid(3), invalid(4), valid(5)]
    summary = await import_records(records, producer, topics, DlqRejects(producer, topics))
    assert [sent.value for sent in producer.sent] == [line("e1"), line("e5")]
    assert (summary.imported, summary.failed, summary.invalid, summary.dlq_failed) == (2, 1, 2, 2)
    assert summary.to_dict()["failed"] == 1
