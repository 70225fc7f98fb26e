"""JourneyShell driven through its ports (tests/agents/fakes.py): no Kafka, no Faust worker.

The journeys agent hands a batch's records to ``on_record``, then calls ``flush`` and
acknowledges the records (but those of a partition in ``dropped``); Faust commits their
offsets only after flushing the producer (the outputs and the table's changelog records). So
what the shell must promise is: when ``flush`` returns, every output of the batch is handed
to the producer and every state it changed is written to the table, in one write per
partition; bad data goes to the DLQ with the reason and returns normally; a partition revoked
mid-batch writes nothing and takes nothing more; and a new shell over the same table, given
again the records not acknowledged, goes on as the old one would have.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest
from prometheus_client import CollectorRegistry

from streams.agents.journeys import CLOCK_KEY, JourneyShell, state_key
from streams.agents.ports import Headers
from streams.agents.rekeying import KEY_HEADER, SOURCE_HEADER
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


async def handle_batch(shell: JourneyShell, messages: list[FakeMessage]) -> list[FakeMessage]:
    """As the journeys agent does (streams/agents/journeys_app.py): the batch's records, then
    its states written; returns the messages it acknowledges."""
    shell.begin()
    for message in messages:
        await shell.on_record(
            message.topic, message.partition, message.key, message.value, message.headers
        )
    await shell.flush()
    return [message for message in messages if message.partition not in shell.dropped]


async def handle(shell: JourneyShell, message: FakeMessage) -> None:
    await handle_batch(shell, [message])


def outputs(producer: FakeProducer) -> list[tuple[str, bytes | None, bytes | None]]:
    return [(r.topic, r.key, r.value) for r in producer.records]


# -- what a returned flush means ------------------------------------------------------------


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


async def test_a_batch_is_acknowledged_only_once_outputs_are_handed_over_and_states_written() -> (
    None
):
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
    journal.add(Entry("ack", TICKS, None, step.offset))  # the agent, once flush returned
    ack = journal.last("ack")
    assert journal.last("send", SMS) < ack
    assert journal.last("write", key=state_key(PARTITION, "c1")) < ack
    assert {partition for partition, _, _ in table.writes} == {PARTITION}


async def test_a_watermark_writes_each_state_it_changed_once() -> None:
    """The first tick releases each customer's held opt-ins and abandonment and starts their
    journeys: several changes to one state, written once when the batch is done."""
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


async def test_a_batch_writes_each_state_once_in_one_write_per_partition() -> None:
    """The whole history as one batch: nothing is written until ``flush``, then each changed
    state once, all of a partition in one table write (no current event needed)."""
    journal = Journal()
    table, producer = FakeTable(journal, auto_deliver=False), FakeProducer(journal)
    shell = shell_over(table, producer)
    records = history()
    other = [FakeMessage(m.topic, PARTITION + 1, m.offset, m.key, m.value, m.headers)
             for m in records]  # fmt: skip
    shell.begin()
    for message in records + other:
        await shell.on_record(
            message.topic, message.partition, message.key, message.value, message.headers
        )
    assert table.writes == []
    assert producer.records  # the outputs went out as the records were handled
    await shell.flush()
    assert len(table.pending) == 2  # one write per partition
    written = [(partition, key) for partition, key, _ in table.writes]
    assert len(written) == len(set(written))  # each state once
    assert {key for _, key in written} == {
        key
        for partition in (PARTITION, PARTITION + 1)
        for key in (
            state_key(partition, "c1"),
            state_key(partition, "c2"),
            state_key(partition, "") + CLOCK_KEY,  # the event-mode clock
        )
    }
    table.deliver()
    assert all(key.startswith(b"%d:" % partition) for partition, key in written)


@pytest.mark.parametrize("revoked_at", [6, FIRST_TICK + 1], ids=["before-outputs", "after"])
async def test_a_partition_revoked_mid_batch_writes_nothing_and_comes_again(
    revoked_at: int,
) -> None:
    """A rebalance while a batch is under way, at the record ``revoked_at``: the revoked
    partition's changes in the batch are dropped, its records that are left are not taken,
    and none of the batch is acknowledged. Given again from the first of them, by a shell over
    the same table, the outputs are the uninterrupted run's; those sent before the
    revocation are repeats of them (the same records, the same ids)."""
    expected = await reference()
    journal, data = Journal(), dict[bytes, bytes]()
    producer = FakeProducer(journal)
    table = FakeTable(journal, data=data)
    shell = shell_over(table, producer)
    records = history()
    assert await handle_batch(shell, records[:4]) == records[:4]
    acked_outputs, written = len(producer.records), len(table.writes)
    shell.begin()
    for message in records[4 : FIRST_TICK + 3]:
        if message.offset == revoked_at:
            shell.revoke({PARTITION})
        await shell.on_record(
            message.topic, message.partition, message.key, message.value, message.headers
        )
    await shell.flush()
    assert shell.dropped == {PARTITION}  # the agent acknowledges none of the batch
    assert table.writes[written:] == []
    assert state_key(PARTITION, "c2") not in data
    repeated = outputs(producer)[acked_outputs:]
    assert bool(repeated) is (revoked_at > FIRST_TICK)  # the test means what it says
    after = shell_over(FakeTable(journal, data=data), producer)
    again = len(producer.records)
    for message in records[4:]:
        await handle(after, message)
    assert outputs(producer)[again:] == expected[acked_outputs:]
    assert all(output in expected for output in repeated)


async def test_a_partition_revoked_between_batches_is_not_taken_until_assigned_again() -> None:
    """Records fetched before a rebalance may reach the agent after it: a partition revoked
    and not assigned here since takes none of them and none is acknowledged. Once the group
    gives it back, its records (from the committed offset) are taken as before."""
    expected = await reference()
    journal = Journal()
    table, producer = FakeTable(journal), FakeProducer(journal)
    shell = shell_over(table, producer)
    records = history()
    shell.revoke({PARTITION})
    assert await handle_batch(shell, records) == []
    assert producer.records == [] and table.writes == []
    shell.assign({PARTITION})
    assert await handle_batch(shell, records) == records
    assert outputs(producer) == expected


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
