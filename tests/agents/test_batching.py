"""The batch path's routing of one fetch (streams/batching.route_fetch), through a fake of
the consumer it needs (``FetchRoute``): Faust's own messages, no broker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from faust.types import TP, Message

from streams.agents.batching import (
    YIELD_EVERY,
    BatchHandler,
    BatchingConsumer,
    FetchRoute,
    GuardedConsumerThread,
    route_fetch,
)

CART, CLICKS, OTHER = TP("t.cart", 0), TP("t.clickstream", 0), TP("t.journey.ticks", 0)


def message(tp: TP, offset: int) -> Message:
    return Message(tp.topic, tp.partition, offset, 0.0, 0, None, b"k", b"v", None, tp=tp)


class FakeConsumer:
    """The consumer's side of ``route_fetch``: read offsets, gaps, commits, the stock path."""

    def __init__(self, acks: bool = True) -> None:
        self.read: dict[TP, int] = {}
        self.acks = acks
        self.sought: set[TP] = set()
        self.settling = True  # a rebalance is under way
        self.gaps: list[tuple[TP, int, int]] = []
        self.rewinds: list[tuple[TP, int]] = []
        self.commit_checks = 0
        self.settled = 0
        self.stock: list[Message] = []
        self.tracked: list[Message] = []

    def read_offset(self, tp: TP, /) -> int | None:
        return self.read.get(tp)

    def set_read_offset(self, tp: TP, offset: int, /) -> None:
        self.read[tp] = offset
        self.sought.discard(tp)

    def just_sought(self, tp: TP, /) -> bool:
        return tp in self.sought

    def rebalancing(self) -> bool:
        return self.settling

    def acks_enabled_for(self, topic: str, /) -> bool:
        return self.acks

    async def add_gap(self, tp: TP, offset_from: int, offset_to: int, /) -> None:
        self.gaps.append((tp, offset_from, offset_to))

    async def rewind(self, tp: TP, offset: int, /) -> bool:
        if (tp, offset) in self.rewinds:
            return False
        self.rewinds.append((tp, offset))
        self.read[tp] = offset
        return True

    async def commit_if_due(self) -> None:
        self.commit_checks += 1

    async def settle_producer(self) -> None:
        self.settled += 1

    @property
    def callback(self) -> Callable[[Message], Awaitable[object]]:
        async def stock(message: Message) -> None:
            self.stock.append(message)

        return stock

    def track_message(self, message: Message, /) -> None:
        self.tracked.append(message)


async def fetched(messages: Sequence[Message]) -> AsyncIterator[tuple[TP, Message]]:
    for m in messages:
        yield m.tp, m


class Handler:
    def __init__(self) -> None:
        self.batches: list[list[Message]] = []

    async def __call__(self, batch: Sequence[Message]) -> None:
        self.batches.append(list(batch))


async def test_one_batch_per_handler_in_fetch_order_the_rest_through_faust_none_unsought() -> None:
    consumer, handler = FakeConsumer(), Handler()
    route: FetchRoute = consumer
    handlers: dict[str, BatchHandler] = {CART.topic: handler, CLICKS.topic: handler}
    consumer.read = {CART: 0, CLICKS: 0, OTHER: 0}  # each sought to 0
    unsought = TP("t.cart", 1)  # assigned, not sought yet: from wherever the consumer stood
    messages = [message(CART, 0), message(CLICKS, 0), message(OTHER, 0), message(CART, 1)]
    await route_fetch(fetched([*messages, message(unsought, 7)]), route, handlers)
    assert handler.batches == [[messages[0], messages[1], messages[3]]]
    assert consumer.tracked == handler.batches[0]  # tracked: their acks count for the commit
    assert consumer.stock == [messages[2]]
    assert consumer.read == {CART: 2, CLICKS: 1, OTHER: 1}  # the offsets each delivers next
    assert consumer.rewinds == [] and consumer.gaps == []
    assert consumer.commit_checks == len(messages)
    assert consumer.settled == 1  # once the handlers wrote, their changelog records go out
    consumer.settling = False  # the rebalance is over and no seek came: taken as it is
    late = message(unsought, 7)
    await route_fetch(fetched([late]), route, handlers)
    assert handler.batches[-1] == [late] and consumer.read[unsought] == 8


async def test_messages_delivered_before_a_seek_are_skipped_and_a_jump_is_fetched_again() -> None:
    consumer, handler = FakeConsumer(), Handler()
    consumer.read[CART] = 5  # a seek to 5 (the committed offset): 5 is delivered next
    messages = [message(CART, 4), message(CART, 5), message(CART, 9), message(CART, 10)]
    await route_fetch(fetched(messages), consumer, {CART.topic: handler})
    # 6-8 were fetched and dropped before: back to 6, and the rest of this fetch waits for them
    assert handler.batches == [[messages[1]]]
    assert consumer.rewinds == [(CART, 6)] and consumer.gaps == []
    again = [message(CART, 9), message(CART, 10)]  # 6-8 are not there: a true gap
    await route_fetch(fetched(again), consumer, {CART.topic: handler})
    assert handler.batches[1] == again
    assert consumer.gaps == [(CART, 6, 8)]
    stock = FakeConsumer()  # a topic through Faust's own path: the same
    stock.read[OTHER] = 6
    await route_fetch(fetched([message(OTHER, 9)]), stock, {CART.topic: Handler()})
    assert stock.rewinds == [(OTHER, 6)] and stock.gaps == [] and stock.stock == []
    await route_fetch(fetched([message(OTHER, 9)]), stock, {CART.topic: Handler()})
    assert stock.gaps == [(OTHER, 6, 8)] and len(stock.stock) == 1
    no_acks = FakeConsumer(acks=False)
    no_acks.read[CART] = 5
    await route_fetch(fetched(messages), no_acks, {CART.topic: Handler()})
    assert no_acks.gaps == [] and no_acks.rewinds == []


async def test_a_partition_whose_first_fetch_was_dropped_is_read_from_where_it_was_sought() -> None:
    # The first record after a seek is the one at the seek's offset: a fetch that starts past
    # it (the records from the committed offset on were fetched and dropped) goes back there,
    # the committed record included (it used to go back one past it and lose it), and so does
    # a partition sought to 0 (one never committed).
    for committed in (419, 0):
        consumer, handler = FakeConsumer(), Handler()
        consumer.read[CART] = committed
        await route_fetch(fetched([message(CART, committed + 3)]), consumer, {CART.topic: handler})
        assert consumer.rewinds == [(CART, committed)] and handler.batches == []
        refetched = [message(CART, committed + n) for n in range(4)]
        await route_fetch(fetched(refetched), consumer, {CART.topic: handler})
        assert handler.batches == [refetched] and consumer.gaps == []
        assert consumer.read[CART] == committed + 4


async def test_a_changelog_is_fetched_again_only_when_its_first_record_after_a_seek_jumps() -> None:
    # Recovery sought the changelog to 40 (the record after the last it applied): a fetch
    # that starts at 45 would have it apply 45 on and never read 40-44. Fetched again from 40;
    # still 45 there (compaction removed 40-44): taken, no gap recorded (changelogs have no
    # acks). Later jumps are compaction's, and taken as they come.
    changelog = TP("t.cartpulse-detector-sessions-changelog", 3)
    consumer, handler = FakeConsumer(acks=False), Handler()
    consumer.read[changelog], consumer.sought = 40, {changelog}
    jumped = [message(changelog, 45), message(changelog, 46)]
    await route_fetch(fetched(jumped), consumer, {CART.topic: handler})
    assert consumer.rewinds == [(changelog, 40)] and consumer.stock == []
    consumer.sought.add(changelog)  # the rewind is a seek too
    await route_fetch(fetched(jumped), consumer, {CART.topic: handler})
    assert consumer.stock == jumped and consumer.gaps == []
    await route_fetch(fetched([message(changelog, 60)]), consumer, {CART.topic: handler})
    assert len(consumer.stock) == 3 and consumer.rewinds == [(changelog, 40)]


async def test_a_long_fetch_yields_to_the_loop_and_an_empty_one_calls_nobody() -> None:
    consumer, handler = FakeConsumer(), Handler()
    ticks = 0

    async def count() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    counter = asyncio.create_task(count())
    await asyncio.sleep(0)
    before = ticks
    messages = [message(CART, offset) for offset in range(2 * YIELD_EVERY)]
    consumer.read[CART] = 0
    await route_fetch(fetched(messages), consumer, {CART.topic: handler})
    counter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await counter
    assert ticks > before  # other tasks ran while the fetch was routed
    assert len(handler.batches) == 1 and len(handler.batches[0]) == 2 * YIELD_EVERY
    await route_fetch(fetched([]), consumer, {CART.topic: handler})
    assert len(handler.batches) == 1 and consumer.settled == 1


class StoppingFetcher:
    """aiokafka's fetcher as the consumer thread sees it: ``fetched_records`` stops the flow
    while it waits (a rebalance), when told to, and returns ``records``."""

    def __init__(self, consumer: BatchingConsumer, records: dict[TP, list[Record]]) -> None:
        self.batching = consumer
        self.records = records
        self.stop_while_waiting = False
        self._closed = False
        self._subscriptions = self

    def fetch_context(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    async def fetched_records(
        self,
        partitions: set[TP],
        timeout: float,  # noqa: ASYNC109 - aiokafka's signature
        max_records: int | None,
    ) -> dict[TP, list[Record]]:
        if self.stop_while_waiting:
            self.batching.flow_stops += 1  # what stop_flow counts
        return self.records


class ThreadSide:
    """The aiokafka consumer in the consumer's thread: its assignment and seeks."""

    def __init__(self, fetcher: StoppingFetcher, assigned: set[TP]) -> None:
        self._fetcher = fetcher
        self._closed = False
        self.assigned = assigned
        self.seeks: list[tuple[TP, int]] = []

    def assignment(self) -> set[TP]:
        return self.assigned

    def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))


@dataclass
class Record:
    offset: int


def guarded_thread(stop_while_waiting: bool) -> tuple[GuardedConsumerThread, ThreadSide]:
    consumer = BatchingConsumer.__new__(BatchingConsumer)  # only its flow counter is read
    consumer.flow_active = True
    kept, revoked = TP("t.cart", 0), TP("t.cart", 1)
    fetcher = StoppingFetcher(consumer, {kept: [Record(6111), Record(6112)], revoked: [Record(9)]})
    fetcher.stop_while_waiting = stop_while_waiting
    thread = GuardedConsumerThread.__new__(GuardedConsumerThread)  # not started: no thread
    thread.consumer = consumer
    return thread, ThreadSide(fetcher, {kept})


async def test_a_fetch_the_flow_stopped_during_gives_its_records_back() -> None:
    thread, side = guarded_thread(stop_while_waiting=True)

    assert await thread._fetch_records(side, {TP("t.cart", 0)}, 1.0, 500) == {}
    # back to the first record taken; the partition revoked meanwhile is its new owner's
    assert side.seeks == [(TP("t.cart", 0), 6111)]


async def test_a_fetch_left_alone_returns_its_records_and_seeks_nothing() -> None:
    thread, side = guarded_thread(stop_while_waiting=False)

    records = await thread._fetch_records(side, {TP("t.cart", 0)}, 1.0, 500)

    assert [r.offset for r in records[TP("t.cart", 0)]] == [6111, 6112]
    assert side.seeks == []
