"""DetectorShell driven through its ports (tests/agents/fakes.py): no Kafka, no Faust worker.

What it promises (streams/agents/detector.py): a message is acknowledged only after its
outputs are delivered and the state it changed is written to the table; an invalid record goes
to its DLQ with the reason and is acknowledged; the watermark waits for the slowest input; a
new shell over the same table resumes where the last flush left it, losing nothing and
emitting again only what it had not acknowledged (with the same ids).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import orjson
import pytest
from prometheus_client import CollectorRegistry

from streams.agents.detector import DetectorShell, state_key
from streams.contract.topics import Topic, TopicCatalogue
from streams.core.detection import DetectorConfig
from streams.core.watermarks import tick_value
from streams.runtime.kafka import ORIGINAL_TOPIC_HEADER, REASON_HEADER, SOURCE_HEADER
from streams.runtime.metrics import DetectorMetrics
from tests.agents.fakes import (
    TP,
    FakeClock,
    FakeMessage,
    FakePositions,
    FakeProducer,
    FakeTable,
    Journal,
    create_event,
    make_tp,
)
from tests.support.events import cart_event

TOPICS = TopicCatalogue("t.")
CART, CLICKS = TOPICS.name(Topic.CART), TOPICS.name(Topic.CLICKSTREAM)
REPARTITION, TICKS = TOPICS.name(Topic.REPARTITION), TOPICS.name(Topic.TICKS)
ABANDONMENTS, ORDERS = TOPICS.name(Topic.ABANDONMENTS), TOPICS.name(Topic.ORDERS)
MINUTE = 60_000
T0 = 1_569_888_000_000  # 2019-10-01T00:00:00Z, tests.support.events' time


def at(minutes: int) -> str:
    hours, mins = divmod(minutes, 60)
    return f"2019-10-01T{hours:02d}:{mins:02d}:00Z"


@dataclass
class World:
    """One partition's ports; ``shell()`` makes a shell over them (again after a 'crash')."""

    journal: Journal = field(default_factory=Journal)
    data: dict[bytes, bytes] = field(default_factory=dict)  # the table's lasting content
    clock: FakeClock = field(default_factory=FakeClock)
    auto_deliver: bool = True
    flush_interval: float = 0.0
    clock_mode: str = "event"

    def __post_init__(self) -> None:
        self.producer = FakeProducer(self.journal, auto_deliver=self.auto_deliver)
        self.positions = FakePositions(self.journal)
        self.table = FakeTable(self.journal, data=self.data)
        self.offsets: dict[str, int] = {}

    def shell(
        self, partition_items: Callable[[int], Iterable[tuple[bytes, bytes | None]]] | None = None
    ) -> DetectorShell[FakeMessage, TP]:
        self.metrics = DetectorMetrics.create(CollectorRegistry())
        return DetectorShell(
            config=DetectorConfig(gap_ms=30 * MINUTE),
            topics=TOPICS,
            clock_mode=self.clock_mode,
            table=self.table,
            send=self.producer,
            ack=self.positions.ack,
            highwater=self.positions.highwater,
            position=self.positions.position,
            make_tp=make_tp,
            create_event=create_event,
            metrics=self.metrics,
            flush_interval=self.flush_interval,
            max_record_bytes=64 * 1024,
            wall_clock=self.clock,
            partition_items=partition_items,
        )

    def message(self, topic: str, value: bytes, key: bytes | None = b"s1") -> FakeMessage:
        """The next record of ``topic`` (partition 0), already at the broker."""
        offset = self.offsets[topic] = self.offsets.get(topic, -1) + 1
        tp = make_tp(topic, 0)
        self.positions.highwaters[tp] = max(self.positions.highwaters.get(tp, 0), offset + 1)
        return FakeMessage(topic, 0, offset, key, value)

    def idle(self, *topics: str) -> None:
        """``topics`` have nothing (more) to deliver: high watermark and position agree."""
        for topic in topics:
            tp = make_tp(topic, 0)
            end = self.offsets.get(topic, -1) + 1
            self.positions.highwaters[tp] = self.positions.positions[tp] = end


def event(event_id: str, session: str, minutes: int, **changes: object) -> bytes:
    return cart_event(event_id=event_id, session_id=session, occurred_at=at(minutes), **changes)


def abandoned(producer: FakeProducer) -> list[dict[str, object]]:
    return [orjson.loads(v or b"") for v in producer.values(ABANDONMENTS)]


def by_id(abandonment: dict[str, object]) -> str:
    return str(abandonment["abandonment_id"])


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


# -- acknowledgement -------------------------------------------------------------------------


async def test_a_message_is_acked_only_once_its_outputs_are_delivered_and_state_written() -> None:
    world = World(auto_deliver=False)
    world.idle(CLICKS, REPARTITION)
    shell = world.shell()
    order = world.message(CART, event("e1", "s1", 0, type="order_completed"))
    handling = asyncio.create_task(shell.on_batch([order]))
    await settle()
    # the order is forwarded but not yet delivered: nothing is written, nothing acknowledged
    assert [r.topic for r in world.producer.records] == [ORDERS]
    assert not handling.done()
    assert world.positions.acked == []
    assert state_key(0, b"s1") not in world.table
    assert world.producer.deliver() == 1
    await handling
    assert world.positions.acked == [order]
    journal = world.journal
    delivered = journal.first("delivered", ORDERS)
    written = journal.first("write", key=state_key(0, b"s1"))
    assert delivered < written < journal.first("ack", CART)
    # every state write went to the changelog partition of the input partition
    assert {partition for partition, _, _ in world.table.writes} == {0}


async def test_a_failed_delivery_acknowledges_nothing_and_persists_nothing() -> None:
    world = World(auto_deliver=False)
    world.idle(CLICKS, REPARTITION)
    shell = world.shell()
    order = world.message(CART, event("e1", "s1", 0, type="order_completed"))
    handling = asyncio.create_task(shell.on_batch([order]))
    await settle()
    world.producer.fail(ORDERS, ConnectionError("broker gone"))
    with pytest.raises(ConnectionError):
        await handling
    assert world.positions.acked == []
    assert world.data == {}  # so the redelivered message is taken again, not as a repeat
    # redelivered to a new shell (the worker restarted): forwarded again, then acknowledged
    world.producer.auto_deliver = True
    await world.shell().on_batch([order])
    assert len(world.producer.on(ORDERS)) == 2
    assert world.producer.records[0].value == world.producer.records[1].value
    assert world.positions.acked == [order]


async def test_a_flush_waits_for_the_previous_flushs_table_writes_before_its_own() -> None:
    world = World()
    world.table.auto_deliver = False
    world.idle(CLICKS, REPARTITION)
    shell = world.shell()
    first = world.message(CART, event("e1", "s1", 0))
    await shell.on_batch([first])
    # written to the store, its changelog records handed over (Faust's commit flushes them)
    assert world.positions.acked == [first]
    assert state_key(0, b"s1") in world.table
    second = world.message(CART, event("e2", "s2", 1), key=b"s2")
    handling = asyncio.create_task(shell.on_batch([second]))
    await settle()
    assert not handling.done()
    assert world.positions.acked == [first]
    assert state_key(0, b"s2") not in world.table
    assert world.table.deliver() == 1
    await handling
    assert world.positions.acked == [first, second]
    assert world.journal.first("delivered", "changelog") < world.journal.first(
        "write", key=state_key(0, b"s2")
    )


async def test_an_idle_partition_is_flushed_by_the_timer_and_kept_through_a_rebalance() -> None:
    world = World(flush_interval=5.0)
    world.idle(CLICKS, REPARTITION)
    shell = world.shell()
    shell.assign({0}, 1)
    first = world.message(CART, event("e1", "s1", 0))
    await shell.on_batch([first])
    await shell.flush_idle()
    assert world.positions.acked == [] and world.data == {}  # not idle for an interval yet
    world.clock.advance(5.0)
    await shell.flush_idle()  # no batch came: the timer flushes it
    assert world.positions.acked == [first]
    assert state_key(0, b"s1") in world.table
    writes = len(world.table.writes)
    # ticks that close nothing leave it clean (the leader sends them every half second)
    await shell.on_batch([world.message(TICKS, tick_value(int(world.clock() * 1000)), key=None)])
    world.clock.advance(5.0)
    await shell.flush_idle()
    assert len(world.table.writes) == writes  # nothing taken since: nothing written again
    # clean when revoked, given back by the next generation: the detector is kept, not loaded
    detector = shell.partitions[0].detector
    shell.revoke({0})
    shell.assign({0}, 2)
    await shell.on_batch([world.message(CART, event("e2", "s2", 1), key=b"s2")])
    assert shell.partitions[0].detector is detector


async def test_a_tick_that_closes_a_period_leaves_its_partition_to_be_loaded_again() -> None:
    world = World(flush_interval=5.0)
    world.idle(CLICKS, REPARTITION)
    shell = world.shell()
    shell.assign({0}, 1)
    await shell.on_batch([world.message(CART, event("e1", "s1", 0))])
    world.clock.advance(5.0)
    await shell.flush_idle()
    closing = tick_value(int(world.clock() * 1000), watermark=T0 + 60 * MINUTE)
    await shell.on_batch([world.message(TICKS, closing, key=None)])
    assert [a["session_id"] for a in abandoned(world.producer)] == ["s1"]
    detector = shell.partitions[0].detector
    shell.revoke({0})  # before the closed period was flushed: the table lacks it
    shell.assign({0}, 2)
    await shell.on_batch([world.message(CART, event("e2", "s2", 61), key=b"s2")])
    assert shell.partitions[0].detector is not detector


async def test_the_partitions_a_batch_needs_are_loaded_side_by_side() -> None:
    """A failover hands a worker several partitions at once: their loads run in threads at
    the same time (the native restore lets go of the interpreter's lock), each from its own
    partition's entries, once (partition 3 has none: an empty detector is not loaded again).
    Loaded one after another, the barrier would time out."""
    world = World()
    world.idle(CLICKS, REPARTITION)
    before = world.shell()
    await before.on_batch(
        [FakeMessage(CART, p, 0, b"s%d" % p, event(f"e{p}", f"s{p}", 0)) for p in range(3)]
    )
    await before.drain()
    assert {key.partition(b":")[0] for key in world.data} == {b"0", b"1", b"2"}
    loading = threading.Barrier(4, timeout=10)
    loaded: list[int] = []

    def partition_items(partition: int) -> list[tuple[bytes, bytes | None]]:
        loaded.append(partition)
        loading.wait()  # returns once all four loads are in
        prefix = b"%d:" % partition
        return [(key, value) for key, value in world.data.items() if key.startswith(prefix)]

    shell = world.shell(partition_items)
    shell.assign({0, 1, 2, 3}, 1)
    await shell.on_batch(
        [FakeMessage(CART, p, 1, b"t%d" % p, event(f"f{p}", f"t{p}", 1)) for p in range(4)]
    )
    assert sorted(loaded) == [0, 1, 2, 3]
    sessions = {p: len(worker.detector) for p, worker in shell.partitions.items()}
    assert sessions == {0: 2, 1: 2, 2: 2, 3: 1}


async def test_unflushed_messages_wait_for_the_flush_interval() -> None:
    world = World(flush_interval=5.0)
    world.idle(CLICKS, REPARTITION)
    shell = world.shell()
    first = world.message(CART, event("e1", "s1", 0))
    await shell.on_batch([first])
    assert world.positions.acked == [] and world.data == {}
    world.clock.advance(5.0)
    second = world.message(CART, event("e2", "s1", 1, product={"id": "p2", "price": "1.00"}))
    await shell.on_batch([second])
    assert world.positions.acked == [first, second]
    assert state_key(0, b"s1") in world.table


# -- invalid records -------------------------------------------------------------------------


async def test_an_invalid_record_goes_to_the_dlq_with_its_reason_and_is_acknowledged() -> None:
    world = World()
    world.idle(CLICKS, REPARTITION)
    shell = world.shell()
    broken = world.message(CART, b"{not json")
    valid = world.message(CART, event("e1", "s1", 0))
    await shell.on_batch([broken, valid])
    (letter,) = world.producer.on(TOPICS.dlq(Topic.CART))
    headers = dict(letter.headers or [])
    assert headers[REASON_HEADER].startswith(b"not valid JSON")
    assert headers[SOURCE_HEADER] == f"{CART}:0:0".encode()  # topic:partition:offset
    assert headers[ORIGINAL_TOPIC_HEADER] == CART.encode()
    assert letter.value == b"{not json" and letter.key == b"s1"
    assert world.positions.acked == [broken, valid]
    assert world.journal.first("delivered", TOPICS.dlq(Topic.CART)) < world.journal.first("ack")
    assert world.metrics.invalid.labels(CART)._value.get() == 1


# -- the watermark across inputs -------------------------------------------------------------


async def test_the_watermark_waits_for_the_slowest_input() -> None:
    world = World()
    world.idle(REPARTITION)
    shell = world.shell()
    cart = [world.message(CART, event(f"c{i}", "s1", i)) for i in range(3)]
    clicks = [world.message(CLICKS, event(f"k{i}", "s2", 120 + i), key=b"s2") for i in range(3)]
    # cart's first record only: clickstream has records but delivered none, so it holds
    await shell.on_batch(cart[:1])
    assert shell.partitions[0].detector.watermark is None
    assert make_tp(CLICKS, 0) in world.positions.asked
    # clickstream two hours ahead: the watermark stays with cart, the slowest, so s1 is open
    await shell.on_batch(clicks[:2])
    assert shell.partitions[0].detector.watermark == T0
    assert abandoned(world.producer) == []
    # cart delivers its last record: it no longer holds, clickstream leads and s1 closes
    await shell.on_batch(cart[1:])
    assert shell.partitions[0].detector.watermark == T0 + 121 * MINUTE
    assert [a["session_id"] for a in abandoned(world.producer)] == ["s1"]
    # the idle repartition topic was asked its position once, at its high watermark
    assert world.positions.asked.count(make_tp(REPARTITION, 0)) == 1


async def test_an_input_never_fetched_holds_the_watermark() -> None:
    world = World()
    world.idle(CLICKS)  # the repartition topic: no high watermark yet
    shell = world.shell()
    await shell.on_batch([world.message(CART, event("e1", "s1", 0))])
    await shell.on_batch([world.message(CART, event("e2", "s2", 300), key=b"s2")])
    assert shell.partitions[0].detector.watermark is None
    world.idle(REPARTITION)
    await shell.on_batch([world.message(CART, event("e3", "s3", 301), key=b"s3")])
    assert [a["session_id"] for a in abandoned(world.producer)] == ["s1"]


# -- live: the wall clock closes nothing a delivered record could continue --------------------


def live_world() -> tuple[World, int]:
    """A live world whose clock stands an hour past T0 (the gap is 30 minutes), and its time."""
    world = World(clock_mode="live")
    world.clock.now = T0 / 1000 + 3600
    world.idle(CLICKS, REPARTITION)
    return world, int(world.clock.now * 1000)


async def test_live_a_tick_closes_what_the_wall_clock_passed_once_the_inputs_are_read() -> None:
    world, now_ms = live_world()
    shell = world.shell()
    await shell.on_batch([world.message(CART, event("e1", "s1", 0))])
    assert abandoned(world.producer) == []  # event time alone: nothing is past its gap
    await shell.on_batch([world.message(TICKS, tick_value(now_ms), key=None)])
    assert [a["session_id"] for a in abandoned(world.producer)] == ["s1"]


async def test_live_a_loaded_partition_takes_its_backlog_before_the_wall_clock_closes() -> None:
    """A session saved before a failover, its next event in Kafka past the committed offset:
    the first tick must not close it, or that event opens a second period under another id."""
    world, now_ms = live_world()
    shell = world.shell()
    first = world.message(CART, event("e1", "s1", 0))
    second = world.message(CART, event("e2", "s1", 10))  # at the broker, not yet delivered
    await shell.on_batch([first, world.message(TICKS, tick_value(now_ms), key=None)])
    assert abandoned(world.producer) == []  # the tick waits: cart holds one more record
    await shell.on_batch([second])  # no tick with it: the one due applies now
    ((only,),) = [abandoned(world.producer)]
    assert (only["session_id"], only["last_activity_at"]) == ("s1", "2019-10-01T00:10:00.000Z")


async def test_live_a_tick_fetched_before_its_batch_records_waits_for_them() -> None:
    world, now_ms = live_world()
    shell = world.shell()
    tick = world.message(TICKS, tick_value(now_ms), key=None)
    cart = [world.message(CART, event("e1", "s1", 0)), world.message(CART, event("e2", "s1", 10))]
    await shell.on_batch([tick, *cart])
    ((only,),) = [abandoned(world.producer)]
    assert only["last_activity_at"] == "2019-10-01T00:10:00.000Z"


async def test_live_an_input_never_fetched_holds_the_wall_clock() -> None:
    world = World(clock_mode="live")
    world.clock.now = T0 / 1000 + 3600
    world.idle(CLICKS)  # the repartition topic: no high watermark yet
    shell = world.shell()
    tick = world.message(TICKS, tick_value(int(world.clock.now * 1000)), key=None)
    await shell.on_batch([world.message(CART, event("e1", "s1", 0)), tick])
    assert abandoned(world.producer) == []
    world.idle(REPARTITION)
    world.clock.advance(1)
    await shell.on_batch([world.message(TICKS, tick_value(int(world.clock.now * 1000)), key=None)])
    assert [a["session_id"] for a in abandoned(world.producer)] == ["s1"]


# -- a restart -------------------------------------------------------------------------------


async def test_a_new_shell_over_the_same_table_resumes_without_loss_or_new_ids() -> None:
    world = World(flush_interval=60.0)
    world.idle(CLICKS, REPARTITION)
    first = world.shell()
    taken = [
        world.message(CART, event("e1", "s1", 0)),
        world.message(CART, event("e2", "s2", 5), key=b"s2"),
    ]
    await first.on_batch(taken)
    world.clock.advance(60.0)
    later = world.message(CART, event("e3", "s1", 10, product={"id": "p2", "price": "1.00"}))
    await first.on_batch([later])  # flushed: e1, e2, e3 are persisted and acknowledged
    assert world.positions.acked == [*taken, later]
    end = world.message(TICKS, tick_value(0, T0 + 5 * 60 * MINUTE), key=None)
    await first.on_batch([end])  # closes both sessions; not flushed, not acknowledged
    before_crash = abandoned(world.producer)
    assert sorted(str(a["session_id"]) for a in before_crash) == ["s1", "s2"]

    # the worker dies; a new one takes the partition and gets the unacknowledged tick again
    second = world.shell()
    await second.on_batch([end])
    after = abandoned(world.producer)[len(before_crash) :]
    assert sorted(after, key=by_id) == sorted(before_crash, key=by_id)  # the same ids, again
    s1 = next(a for a in after if a["session_id"] == "s1")
    assert orjson.dumps(s1["cart"]).count(b"product_id") == 2  # e3 was not lost
    world.clock.advance(60.0)
    wake = world.message(TICKS, tick_value(0), key=None)
    await second.on_batch([wake])  # the next flush acknowledges the tick
    assert world.positions.acked[-2:] == [end, wake]
    # and once acknowledged, nothing comes a third time
    third = world.shell()
    world.clock.advance(60.0)
    await third.on_batch([world.message(TICKS, tick_value(0, T0 + 6 * 60 * MINUTE), key=None)])
    assert len(abandoned(world.producer)) == 2 * len(before_crash)
