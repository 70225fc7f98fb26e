"""JourneyShell driven through its ports (tests/agents/fakes.py): no Kafka, no Faust worker.

The journeys agent acknowledges a record when ``on_record`` returns, and Faust commits its
offset only after flushing the producer (the outputs and the table's changelog records). So
what the shell must promise is: when ``on_record`` returns, every output of the record is
handed to the producer and every state it changed is written to the table, on its changelog
partition; bad data goes to the DLQ with the reason and returns normally; and a new shell over
the same table goes on as the old one would have.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest
from prometheus_client import CollectorRegistry

from streams.agents.journeys import KEY_HEADER, SOURCE_HEADER, JourneyShell, state_key
from streams.agents.ports import Headers
from streams.contract.topics import Topic, TopicCatalogue
from streams.core.catalogue import Catalogue
from streams.core.journeys import JourneyEngine
from streams.core.policy import parse_policy
from streams.core.watermarks import tick_value
from streams.runtime.kafka import REASON_HEADER
from streams.runtime.metrics import JourneyMetrics
from tests.agents.fakes import (
    Entry,
    FakeClock,
    FakeMessage,
    FakeProducer,
    FakeTable,
    Journal,
    agent_event,
)
from tests.support.journeys import POLICY, SECRET

TOPICS = TopicCatalogue("t.")
ABANDONMENTS, CUSTOMERS = TOPICS.name(Topic.ABANDONMENTS), TOPICS.name(Topic.CUSTOMERS)
TICKS, DECISIONS = TOPICS.name(Topic.JOURNEY_TICKS), TOPICS.name(Topic.DECISIONS)
SMS, EMAIL = TOPICS.name(Topic.SEND_SMS), TOPICS.name(Topic.SEND_EMAIL)
INPUTS = TOPICS.name(Topic.JOURNEY_INPUTS)
MINUTE, HOUR = 60_000, 3_600_000
DETECTED = 1_781_101_800_000  # 2026-06-10T14:30:00Z: 10:30 in the policy's New York
PARTITION = 2


def shell_over(table: FakeTable, producer: FakeProducer) -> JourneyShell:
    engine = JourneyEngine(parse_policy(POLICY), SECRET, catalogue=Catalogue())
    return JourneyShell(
        engine=engine,
        topics=TOPICS,
        live=False,
        table=table,
        send=producer,
        metrics=JourneyMetrics.create(CollectorRegistry()),
        max_record_bytes=65_536,
        wall_clock=FakeClock(),
    )


def profile(customer: str) -> bytes:
    return orjson.dumps(
        {"customer_id": customer, "phone": "+14155550100", "email": f"{customer}@example.com"}
    )


def abandonment(customer: str) -> bytes:
    return orjson.dumps(
        {
            "abandonment_id": f"ab-{customer}",
            "kind": "cart",
            "session_id": f"s-{customer}",
            "customer_id": customer,
            "store_id": "default",
            "last_activity_at": "2026-06-10T14:00:00.000Z",
            "detected_at": "2026-06-10T14:30:00.000Z",
            "checkout_started": False,
            "cart": {
                "items": [{"product_id": "p1", "quantity": 1, "price": "150.00"}],
                "value": "150.00",
                "currency": "USD",
                "url": None,
            },
            "viewed_products": [],
        }
    )


def consent(customer: str, channel: str) -> tuple[str, bytes, bytes, Headers]:
    """An opt-in as the journeys read it: re-keyed by customer, its origin in the headers."""
    value = orjson.dumps(
        {"status": "opted_in", "source": "checkout", "recorded_at": "2026-06-01T00:00:00.000Z"}
    )
    origin = [(SOURCE_HEADER, b"consents"), (KEY_HEADER, f"{customer}:{channel}".encode())]
    return INPUTS, customer.encode(), value, origin


def tick(hours: int) -> tuple[str, None, bytes, Headers]:
    return TICKS, None, tick_value(0, DETECTED + hours * HOUR + MINUTE), None


def history() -> list[FakeMessage]:
    """Two customers' profiles, opt-ins and abandonments, and the clock moving over their
    steps (the first tick starts their journeys)."""
    records: list[tuple[str, bytes | None, bytes, Headers]] = []
    for customer in ("c1", "c2"):
        records.append((CUSTOMERS, customer.encode(), profile(customer), None))
        records.append(consent(customer, "sms"))
        records.append(consent(customer, "email"))
        records.append((ABANDONMENTS, customer.encode(), abandonment(customer), None))
    records += [tick(hours) for hours in (0, 1, 2, 21, 49, 200)]
    return [
        FakeMessage(topic, PARTITION, offset, key, value, headers)
        for offset, (topic, key, value, headers) in enumerate(records)
    ]


FIRST_TICK = 8  # history()'s index of the tick that starts the journeys


async def handle(shell: JourneyShell, message: FakeMessage) -> None:
    """As the journeys agent does: the record is Faust's current event while it is handled."""
    with agent_event(message):
        await shell.on_record(
            message.topic, message.partition, message.key, message.value, message.headers
        )


def outputs(producer: FakeProducer) -> list[tuple[str, bytes | None, bytes | None]]:
    return [(r.topic, r.key, r.value) for r in producer.records]


# -- what a returned on_record means ---------------------------------------------------------


class GatedProducer(FakeProducer):
    """A producer whose buffer is full until the test opens the gate (send blocks)."""

    def __init__(self, journal: Journal) -> None:
        super().__init__(journal)
        self.gate = asyncio.Event()

    async def __call__(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers, /
    ) -> asyncio.Future[None]:
        await self.gate.wait()
        delivery = await super().__call__(topic, key, value, headers)
        assert isinstance(delivery, asyncio.Future)
        return delivery


async def test_on_record_returns_only_once_outputs_are_handed_over_and_state_written() -> None:
    journal = Journal()
    table, producer = FakeTable(journal), GatedProducer(journal)
    shell = shell_over(table, producer)
    records = history()
    producer.gate.set()
    for message in records[: FIRST_TICK + 1]:  # up to the journeys' start
        await handle(shell, message)
    producer.gate.clear()
    step = records[FIRST_TICK + 1]  # the first step is due
    handling = asyncio.create_task(handle(shell, step))  # the first step is due
    for _ in range(20):
        await asyncio.sleep(0)
    assert not handling.done()  # the producer has not taken the step's message yet
    producer.gate.set()
    await handling
    journal.add(Entry("ack", TICKS, None, step.offset))  # the agent, once on_record returned
    ack = journal.last("ack")
    assert journal.last("send", SMS) < ack
    assert journal.last("write", key=state_key(PARTITION, "c1")) < ack
    assert {partition for partition, _, _ in table.writes} == {PARTITION}


async def test_a_watermark_writes_each_state_it_changed_once() -> None:
    """The first tick releases each customer's held opt-ins and abandonment and starts their
    journeys: several changes to one state, written once when the record is done."""
    journal = Journal()
    table, producer = FakeTable(journal), FakeProducer(journal)
    shell = shell_over(table, producer)
    records = history()
    for message in records[:FIRST_TICK]:
        await handle(shell, message)
    before = len(table.writes)
    await handle(shell, records[FIRST_TICK])
    written = [key for _, key, _ in table.writes[before:]]
    customers = [state_key(PARTITION, c) for c in ("c1", "c2")]
    assert sorted(k for k in written if k in customers) == customers
    assert any(r.topic == DECISIONS for r in producer.records)  # the journeys started


@pytest.mark.expect_errors  # the shell logs the internal error it dead-letters
async def test_a_write_outside_an_event_is_refused_and_dead_lettered_as_internal() -> None:
    """The fake table holds the shell to Faust's rule (so the tests above mean something),
    and nothing escapes the shell: the record goes to the DLQ as an internal error."""
    journal = Journal()
    producer = FakeProducer(journal)
    shell = shell_over(FakeTable(journal), producer)
    message = history()[0]
    await shell.on_record(message.topic, PARTITION, message.key, message.value, None)
    (letter,) = producer.records
    assert letter.topic == TOPICS.dlq(Topic.CUSTOMERS)
    assert dict(letter.headers or [])[REASON_HEADER].startswith(b"internal error: TypeError")


# -- bad data --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "value", "dlq", "reason"),
    [
        (ABANDONMENTS, b"{not json", Topic.ABANDONMENTS, b"abandonment is not valid JSON"),
        (CUSTOMERS, b'{"customer_id": 7}', Topic.CUSTOMERS, b"customer_id"),
    ],
    ids=["unreadable", "invalid"],
)
async def test_bad_data_goes_to_the_dlq_with_its_reason_and_returns(
    topic: str, value: bytes, dlq: Topic, reason: bytes
) -> None:
    journal = Journal()
    table, producer = FakeTable(journal), FakeProducer(journal)
    shell = shell_over(table, producer)
    await handle(shell, FakeMessage(topic, PARTITION, 0, b"c1", value))
    (letter,) = producer.records
    assert letter.topic == TOPICS.dlq(dlq) and letter.key == b"c1"
    assert reason in dict(letter.headers or [])[REASON_HEADER]
    assert table.data == {}
    assert shell.metrics.invalid.labels(dlq.value)._value.get() == 1


# -- a restart -------------------------------------------------------------------------------


async def reference() -> list[tuple[str, bytes | None, bytes | None]]:
    journal = Journal()
    producer = FakeProducer(journal)
    shell = shell_over(FakeTable(journal), producer)
    for message in history():
        await handle(shell, message)
    return outputs(producer)


def duplicate_notice(output: tuple[str, bytes | None, bytes | None]) -> bool:
    topic, _, value = output
    return topic == DECISIONS and orjson.loads(value or b"{}").get("reason") == "duplicate"


@pytest.mark.parametrize("crash_after", range(1, len(history())))
async def test_a_new_shell_over_the_same_table_goes_on_as_the_old_one_would(
    crash_after: int,
) -> None:
    """The worker dies after ``crash_after`` records, before the last one's offset was
    committed: a new shell over the same table gets that record again, then the rest. The
    outputs are the uninterrupted run's, plus at most the redelivered record's outputs again
    (the same records, same ids) and, for a redelivered abandonment, the engine's
    ``ignored``/``duplicate`` decision about it: never a second journey, command or coupon."""
    expected = await reference()
    assert {topic for topic, _, _ in expected} >= {DECISIONS, SMS, EMAIL}  # the test means it
    assert not [o for o in expected if duplicate_notice(o)]
    journal, data = Journal(), dict[bytes, bytes]()
    producer = FakeProducer(journal)
    records = history()
    before = shell_over(FakeTable(journal, data=data), producer)
    for message in records[:crash_after]:
        await handle(before, message)
    first_run = len(producer.records)
    after = shell_over(FakeTable(journal, data=data), producer)
    redelivered = records[crash_after - 1]
    await handle(after, redelivered)  # not committed: delivered again
    again = len(producer.records) - first_run
    for message in records[crash_after:]:
        await handle(after, message)
    got = outputs(producer)
    first, repeated = got[:first_run], got[first_run : first_run + again]
    rest = got[first_run + again :]
    assert first + [o for o in rest if not duplicate_notice(o)] == expected
    assert all(o in first for o in repeated if not duplicate_notice(o))  # same records, same ids
    notices = [o for o in got if duplicate_notice(o)]
    assert len(notices) <= 1
    for _, _, value in notices:
        assert redelivered.topic == ABANDONMENTS
        assert (
            orjson.loads(value or b"")["abandonment_id"]
            == orjson.loads(redelivered.value or b"")["abandonment_id"]
        )
