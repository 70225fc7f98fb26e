"""The detector's shell through its ports: what it dead-letters, and how."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from streams.agents.detector import DetectorShell
from streams.contract.topics import TopicCatalogue
from streams.core.detection import DetectorConfig
from streams.runtime.kafka import DLQ_EXCERPT_BYTES
from streams.runtime.metrics import DetectorMetrics
from tests.agents.fakes import FakeTable, Journal
from tests.support.events import cart_event

TOPICS = TopicCatalogue("t.")


@dataclass
class Message:
    value: bytes
    key: bytes = b"s1"
    topic: str = "t.cart"
    partition: int = 0
    offset: int = 0

    @property
    def tp(self) -> tuple[str, int]:
        return (self.topic, self.partition)


@dataclass
class Sent:
    records: list[tuple[str, bytes | None, bytes, Any]] = field(default_factory=list)

    async def __call__(self, topic: str, key: bytes | None, value: bytes, headers: Any) -> Any:
        self.records.append((topic, key, value, headers))
        delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        delivered.set_result(None)
        return delivered


async def _nothing(_: object) -> None:
    return None


def shell(sent: Sent, **changes: Any) -> DetectorShell:
    """A shell sending to ``sent``, with fakes for its other ports; ``changes`` replace them
    (a map as ``table`` is the table's content)."""
    if isinstance(changes.get("table"), dict):
        changes["table"] = FakeTable(Journal(), changelog=False, data=changes["table"])
    ports: dict[str, Any] = {
        "config": DetectorConfig(),
        "topics": TOPICS,
        "clock_mode": "event",
        "table": FakeTable(Journal(), changelog=False),
        "send": sent,
        "ack": lambda _: None,
        "highwater": lambda _: None,
        "position": _nothing,
        "make_tp": lambda topic, partition: (topic, partition),
        "create_event": lambda message: message,
        "metrics": DetectorMetrics.create(CollectorRegistry()),
        "flush_interval": 3600,
        "max_record_bytes": 64 * 1024,
    }
    return DetectorShell(**{**ports, **changes})


def dead_letters(sent: Sent) -> list[dict[str, bytes]]:
    return [dict(h) for topic, _, _, h in sent.records if topic.endswith(".dlq")]


async def test_contract_cases_are_never_an_internal_error() -> None:
    sent = Sent()
    detector = shell(sent)
    messages = [
        Message(cart_event(product={"id": "p1", "price": "-0"})),
        Message(cart_event(event_id="e2", type="order_completed", order={"value": "-0"}), offset=1),
        Message(cart_event(event_id="e3", occurred_at="2019-10-01T00:00:00,5Z"), offset=2),
        Message(cart_event(event_id="e4", product={"id": "p1", "price": "1_000"}), offset=3),
    ]
    await detector.on_batch(messages)
    reasons = [h["cartpulse.reason"].decode() for h in dead_letters(sent)]
    assert reasons == [
        "occurred_at must be RFC 3339 with a UTC offset (2019-10-01T00:10:00Z, "
        "2019-10-01T02:10:00.5+02:00), got '2019-10-01T00:00:00,5Z'",
        "product.price is not a decimal (ASCII digits, an optional point and exponent), "
        "got '1_000'",
    ]
    orders = [r for r in sent.records if r[0] == "t.orders"]
    assert len(orders) == 1  # the -0 order is an order, forwarded


async def test_a_dead_letter_carries_a_bounded_excerpt_with_the_full_length_and_hash() -> None:
    sent = Sent()
    huge = b'{"pad": "' + b"x" * 2_000_000 + b'"}'
    await shell(sent).on_batch([Message(huge)])
    ((topic, key, value, headers),) = sent.records
    assert topic == "t.cart.dlq"
    assert key == b"s1"
    assert value == huge[:DLQ_EXCERPT_BYTES]
    named = dict(headers)
    assert named["cartpulse.original_bytes"] == str(len(huge)).encode()
    assert named["cartpulse.original_sha256"] == hashlib.sha256(huge).hexdigest().encode()
    assert named["cartpulse.reason"].startswith(b"record is 2000011 bytes, over the 65536-byte")
