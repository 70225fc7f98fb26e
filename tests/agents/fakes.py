"""Typed fakes of the shells' ports (streams/agents/ports.py), sharing one journal.

Every fake writes what happens to it, in order, into a ``Journal``: a record handed to the
producer (``send``), its delivery completed or failed (``delivered``/``failed``), a table
write (``write``/``delete``) and an acknowledgement (``ack``). A test reads the journal to
check the order the shell's contract promises, e.g. a message's ``ack`` after the
``delivered`` of its outputs and the ``write`` of its state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from streams.agents.batching import acting_for, current_event
from streams.agents.ports import Delivery, Headers, InputMessage, Positions, Producer, StateTable
from streams.agents.ports import Send as SendPort

TP = tuple[str, int]
Step = Literal["send", "delivered", "failed", "write", "delete", "ack"]


@dataclass(frozen=True, slots=True)
class Entry:
    step: Step
    topic: str = ""
    key: bytes | None = None
    offset: int | None = None


@dataclass(slots=True)
class Journal:
    entries: list[Entry] = field(default_factory=list)

    def add(self, entry: Entry) -> None:
        self.entries.append(entry)

    def first(self, step: Step, topic: str | None = None, key: bytes | None = None) -> int:
        """The index of the first matching entry; raises when there is none."""
        for index, entry in enumerate(self.entries):
            if entry.step == step and topic in (None, entry.topic) and key in (None, entry.key):
                return index
        raise AssertionError(f"no {step} {topic or ''} {key!r} in {self.entries}")

    def last(self, step: Step, topic: str | None = None, key: bytes | None = None) -> int:
        """The index of the last matching entry; raises when there is none."""
        for index in range(len(self.entries) - 1, -1, -1):
            entry = self.entries[index]
            if entry.step == step and topic in (None, entry.topic) and key in (None, entry.key):
                return index
        raise AssertionError(f"no {step} {topic or ''} {key!r} in {self.entries}")

    def steps(self, step: Step) -> list[Entry]:
        return [entry for entry in self.entries if entry.step == step]


# -- messages --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FakeMessage:
    """A consumed record (``InputMessage``), with the headers Faust's message carries."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = None


@dataclass(frozen=True, slots=True, weakref_slot=True)  # Faust holds its current event weakly
class FakeEvent:
    """Faust's event around a message: a table write takes its changelog partition from it."""

    message: FakeMessage


def make_tp(topic: str, partition: int) -> TP:
    return (topic, partition)


def create_event(message: FakeMessage) -> FakeEvent:
    return FakeEvent(message)


@contextmanager
def agent_event(message: FakeMessage) -> Iterator[None]:
    """What a Faust agent's stream does around each record: makes it the current event."""
    with acting_for(FakeEvent(message)):
        yield


# -- the producer ----------------------------------------------------------------------------


@dataclass(slots=True)
class Produced:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers
    delivery: asyncio.Future[None]


class FakeProducer:
    """The producer (``Producer`` and ``Send``). With ``auto_deliver`` every record is
    delivered at once; otherwise its delivery stays pending until ``deliver`` or ``fail``."""

    def __init__(self, journal: Journal, *, auto_deliver: bool = True) -> None:
        self.journal = journal
        self.auto_deliver = auto_deliver
        self.records: list[Produced] = []

    async def __call__(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers, /
    ) -> Delivery:
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        record = Produced(topic, key, value, headers, delivery)
        self.records.append(record)
        self.journal.add(Entry("send", topic, key))
        if self.auto_deliver:
            self._deliver(record)
        return delivery

    def deliver(self) -> int:
        """Complete every pending delivery; returns how many."""
        pending = [r for r in self.records if not r.delivery.done()]
        for record in pending:
            self._deliver(record)
        return len(pending)

    def fail(self, topic: str, error: Exception) -> None:
        """Fail the pending deliveries of ``topic`` (the broker refused them)."""
        for record in self.records:
            if record.topic == topic and not record.delivery.done():
                record.delivery.set_exception(error)
                self.journal.add(Entry("failed", record.topic, record.key))

    def _deliver(self, record: Produced) -> None:
        record.delivery.set_result(None)
        self.journal.add(Entry("delivered", record.topic, record.key))

    def on(self, topic: str) -> list[Produced]:
        return [r for r in self.records if r.topic == topic]

    def values(self, topic: str) -> list[bytes | None]:
        return [r.value for r in self.on(topic)]


# -- the table -------------------------------------------------------------------------------


class FakeTable:
    """A table of bytes to bytes (``StateTable``). With ``changelog`` (Faust's tables have
    one) a write needs a current event, as Faust's does, and is recorded with the partition
    its changelog record goes to; several fakes over one ``data`` are one table after a
    restart."""

    def __init__(
        self,
        journal: Journal,
        *,
        changelog: bool = True,
        data: dict[bytes, bytes] | None = None,
        auto_deliver: bool = True,
    ) -> None:
        self.journal = journal
        self.changelog = changelog
        self.auto_deliver = auto_deliver
        self.pending: list[asyncio.Future[None]] = []  # ``write``s' deliveries not completed
        self.data: dict[bytes, bytes] = {} if data is None else data
        self.writes: list[tuple[int | None, bytes, bytes | None]] = []  # (partition, key, value)

    def items(self) -> Iterable[tuple[bytes, bytes | None]]:
        return list(self.data.items())

    def keys(self) -> Iterable[bytes]:
        return list(self.data)

    def get(self, key: bytes, /) -> bytes | None:
        return self.data.get(key)

    def pop(self, key: bytes, default: None, /) -> bytes | None:
        self._changelog(key, None)
        self.journal.add(Entry("delete", key=key))
        return self.data.pop(key, default)

    def __setitem__(self, key: bytes, value: bytes, /) -> None:
        self._changelog(key, value)
        self.journal.add(Entry("write", key=key))
        self.data[key] = value

    async def write(
        self, partition: int, changes: Sequence[tuple[bytes, bytes | None]], /
    ) -> Delivery | None:
        """Each change as ``__setitem__``/``pop`` records it, without a current event (the
        partition is named); delivered at once with ``auto_deliver``, else at ``deliver``."""
        for key, value in changes:
            self.writes.append((partition if self.changelog else None, key, value))
            if value is None:
                self.journal.add(Entry("delete", key=key))
                self.data.pop(key, None)
            else:
                self.journal.add(Entry("write", key=key))
                self.data[key] = value
        if not changes:
            return None
        delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append(delivered)
        if self.auto_deliver:
            self.deliver()
        return delivered

    def deliver(self) -> int:
        """Complete every pending ``write``'s delivery; returns how many."""
        pending, self.pending = self.pending, []
        for delivered in pending:
            delivered.set_result(None)
            self.journal.add(Entry("delivered", "changelog"))
        return len(pending)

    def __contains__(self, key: bytes) -> bool:
        return key in self.data

    def _changelog(self, key: bytes, value: bytes | None) -> None:
        if not self.changelog:
            self.writes.append((None, key, value))
            return
        event = current_event()
        if event is None:  # Faust: "Cannot modify table key from outside of stream iteration"
            raise TypeError(f"table key {key!r} written outside an event: no changelog partition")
        self.writes.append((event.message.partition, key, value))


# -- the consumer and the clock --------------------------------------------------------------


class FakePositions:
    """The consumer (``Positions``): high watermarks and positions the test sets, and the
    messages acknowledged."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.highwaters: dict[TP, int] = {}
        self.positions: dict[TP, int] = {}
        self.acked: list[FakeMessage] = []
        self.asked: list[TP] = []

    def ack(self, message: FakeMessage, /) -> bool:
        self.acked.append(message)
        self.journal.add(Entry("ack", message.topic, message.key, message.offset))
        return True

    def highwater(self, tp: TP, /) -> int | None:
        return self.highwaters.get(tp)

    async def position(self, tp: TP, /) -> int | None:
        self.asked.append(tp)
        return self.positions.get(tp)


class FakeClock:
    """The wall clock (``Clock``), moved by the test."""

    def __init__(self, now: float = 1_781_100_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# The fakes are the ports (checked by mypy on this module).
def _conforms(journal: Journal) -> None:
    producer: Producer = FakeProducer(journal)
    send: SendPort = FakeProducer(journal)
    table: StateTable = FakeTable(journal)
    positions: Positions[FakeMessage, TP] = FakePositions(journal)
    message: InputMessage = FakeMessage("t", 0, 0, None, None)
    del producer, send, table, positions, message
