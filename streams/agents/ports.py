"""The ports of the worker's shells: what they need of Faust, Kafka and the clock, by name.

``streams/agents/app.py`` and ``streams/agents/journeys_app.py`` plug Faust's own objects in (the
producer, a ``Table``, the consumer's ``ack``/``highwater``/``position``); the tests in
``tests/agents/`` plug typed fakes in (``tests/agents/fakes.py``) and drive the shells directly.
No Faust object here: a shell knows these shapes only. A port that is handed back what the
shell received (``ack`` a message, ``highwater`` a topic-partition) is typed by the shell's type
variables, ``M`` and ``T``; unparametrized, a shell is the worker's, over Faust's ``Message``
and ``TP``, and a test's fakes choose their own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

from typing_extensions import TypeVar

from streams.runtime.kafka import ConsumedRecord

if TYPE_CHECKING:  # only the default of the type variables below: the worker's own types
    from faust.types import TP, Message

Headers = list[tuple[str, bytes]] | None
# The wall clock, in seconds since the epoch (``time.time``); a fake in tests.
Clock = Callable[[], float]
# A record's delivery: awaiting it returns once the broker has the record, or raises.
Delivery = Awaitable[object]


# One consumed record, as the shells read it (Faust's ``Message``).
InputMessage = ConsumedRecord


class Producer(Protocol):
    """Hands one record to the producer; returns its ``Delivery`` without waiting for it.

    The detector gathers the deliveries before it persists state and acknowledges."""

    def __call__(
        self, topic: str, key: bytes | None, value: bytes, headers: Headers, /
    ) -> Awaitable[Delivery]: ...


class Send(Protocol):
    """Sends one record (``value`` None: a tombstone); returns once the producer has it.

    The journeys do not wait for the broker: Faust flushes the producer before it commits
    the offsets of the records they handled."""

    def __call__(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers, /
    ) -> Awaitable[object]: ...


class StateTable(Protocol):
    """A changelogged table of bytes to bytes (a Faust ``Table`` with raw codecs).

    A write is durable once the table's changelog record is delivered: Faust's producer
    carries it, and flushes it before the offsets are committed. A key set or popped one at a
    time needs a current event (its partition's changelog); ``write`` names the partition and
    writes many changes in one go (value None: deleted), returning their ``Delivery`` (None:
    nothing to write). One table is written one way only (streams/agents/changelog.py)."""

    def items(self) -> Iterable[tuple[bytes, bytes | None]]: ...
    def keys(self) -> Iterable[bytes]: ...
    def get(self, key: bytes, /) -> bytes | None: ...
    def pop(self, key: bytes, default: None, /) -> bytes | None: ...
    def __setitem__(self, key: bytes, value: bytes, /) -> None: ...
    def write(
        self, partition: int, changes: Sequence[tuple[bytes, bytes | None]], /
    ) -> Awaitable[Delivery | None]: ...


M = TypeVar("M", bound=InputMessage, default="Message")  # a consumed message
T = TypeVar("T", bound=Hashable, default="TP")  # names an input topic-partition
M_contra = TypeVar("M_contra", bound=InputMessage, contravariant=True)
T_contra = TypeVar("T_contra", bound=Hashable, contravariant=True)


class Positions(Protocol[M_contra, T_contra]):
    """The consumer's side of the inputs: acknowledgement and how far each input is.

    ``ack`` marks a message done (its offset may be committed); ``highwater`` is the offset
    the next record of the topic-partition will get (None: not fetched yet); ``position`` the
    offset the consumer will fetch next (None: unknown). The detector takes the three bound
    methods (Faust's consumer has them)."""

    def ack(self, message: M_contra, /) -> object: ...
    def highwater(self, tp: T_contra, /) -> int | None: ...
    def position(self, tp: T_contra, /) -> Awaitable[int | None]: ...
