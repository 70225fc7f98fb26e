"""Event-time watermarks: the ticks that carry them and how several inputs merge into one (pure).

**Ticks.** The leader sends one small record per partition to a topic co-partitioned with the
inputs (streams/agents/ticks.py), and ``cartpulse watermark`` sends the same with an explicit
event-time ``watermark`` (streams/tools/watermark.py). ``tick_value`` writes one, ``read_tick``
reads
one; both sides use this module, so the worker and the tool agree on the format.

**The merge.** A detector partition reads several inputs (clickstream, cart, the repartition
topic). Each input topic-partition is in event-time order, or nearly (within the lateness),
but the inputs are not in order with each other: a fetch may bring clickstream hours ahead of
cart. ``InputMerge`` decides how far the partition's watermark may move:

* an input with records still to deliver holds the watermark at the newest event time it has
  delivered (the slowest such input wins); one with records to deliver and no event taken yet
  holds it where it is;
* an input that has delivered everything up to its high watermark holds nothing back; one
  that has delivered nothing since the partition was loaded holds the watermark until the
  consumer's position shows it caught up at that high watermark (it is then *idle*);
* the watermark is the chosen event time less the allowed lateness, and never goes back.

**Live.** The wall clock may close a partition's sessions only while none of its inputs holds
records still to deliver (``holding``): a record already in Kafka, written before the deadline,
would otherwise continue a session the clock just closed, and open a second period.

No clock, no Kafka: the shell hands in high watermarks and positions it read from the consumer.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

import orjson

K = TypeVar("K", bound=Hashable)


# -- ticks -----------------------------------------------------------------------------------


def tick_value(wall_ms: int, watermark: int | None = None) -> bytes:
    """A tick record's value: the sender's wall clock and, optionally, an event-time watermark."""
    tick: dict[str, int] = {"wall_ms": wall_ms}
    if watermark is not None:
        tick["watermark"] = watermark
    return orjson.dumps(tick)


def read_tick(raw: bytes | None) -> tuple[int | None, int | None]:
    """``(watermark, wall_ms)`` of a tick; ``None`` for what it lacks or cannot say."""
    try:
        tick = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(tick, dict):
        return None, None
    watermark, wall_ms = tick.get("watermark"), tick.get("wall_ms")
    return (
        watermark if type(watermark) is int else None,
        wall_ms if type(wall_ms) is int else None,
    )


def ticks(
    partitions: int, wall_ms: int, watermark: int | None = None
) -> Iterator[tuple[int, bytes]]:
    """``(partition, value)`` of the ticks that reach every partition of a ticks topic."""
    value = tick_value(wall_ms, watermark)
    for partition in range(partitions):
        yield partition, value


# -- merging inputs --------------------------------------------------------------------------


@dataclass(slots=True)
class InputProgress:
    """What is known of one input topic-partition since the partition was loaded."""

    delivered: int | None = None  # offset of the last record delivered (taken or not)
    newest: int | None = None  # newest event time taken from it
    idle_at: int | None = None  # the high watermark the consumer's position was seen at
    checked: int | None = None  # live: what it had delivered when ``to_ask_live`` last saw it


class InputMerge(Generic[K]):
    """One partition's inputs, merged into its watermark; see the module docstring.

    ``K`` names an input topic-partition (Faust's ``TP`` in the worker). A high watermark is
    the offset the next record of the input will get (``None``: not fetched yet).
    """

    __slots__ = ("inputs", "lateness_ms", "watermark")

    def __init__(self, inputs: Iterable[K], lateness_ms: int) -> None:
        self.inputs: dict[K, InputProgress] = {tp: InputProgress() for tp in inputs}
        self.lateness_ms = lateness_ms
        self.watermark: int | None = None  # the last one ``advance`` returned

    def delivered(self, tp: K, offset: int) -> None:
        """A record of ``tp`` was delivered (valid, invalid or re-keyed)."""
        self._progress(tp).delivered = offset

    def took(self, tp: K, event_ms: int) -> None:
        """An event of ``tp`` with this event time was taken by the detector."""
        progress = self._progress(tp)
        if progress.newest is None or event_ms > progress.newest:
            progress.newest = event_ms

    def to_ask(self, highwaters: Mapping[K, int | None]) -> list[K]:
        """The inputs whose consumer position decides whether they are idle; empty when the
        merge holds whatever the positions say (so the shell need not ask)."""
        asks: list[K] = []
        for tp, progress in self.inputs.items():
            highwater = highwaters.get(tp)
            if progress.delivered is None:
                if highwater is None:
                    return []
                if progress.idle_at != highwater:
                    asks.append(tp)
            elif progress.delivered + 1 < (highwater or 0) and progress.newest is None:
                return []
        return asks

    def position(self, tp: K, highwater: int | None, position: int | None) -> None:
        """The consumer's position of ``tp``: at or past ``highwater`` it is idle there."""
        if highwater is not None and position is not None and position >= highwater:
            self._progress(tp).idle_at = highwater

    def holding(self, highwaters: Mapping[K, int | None]) -> list[K]:
        """Live: the inputs that may still have records below their high watermark to deliver
        (one never fetched cannot say), so the wall clock must not close the sessions those
        records could continue. An input is clear once it delivered up to its high watermark
        or the consumer's position was seen there (``position``: past records it never
        delivers, such as a transaction's markers)."""
        held: list[K] = []
        for tp, progress in self.inputs.items():
            highwater = highwaters.get(tp)
            if highwater is not None and progress.idle_at == highwater:
                continue
            delivered = progress.delivered
            if highwater is None or delivered is None or delivered + 1 < highwater:
                held.append(tp)
        return held

    def to_ask_live(self, highwaters: Mapping[K, int | None]) -> list[K]:
        """Live: the held inputs whose consumer position to ask, those that delivered nothing
        since this last looked (records flowing in are no reason to ask: a position costs
        the worker a call into the consumer's thread)."""
        asks: list[K] = []
        for tp in self.holding(highwaters):
            progress = self.inputs[tp]
            if highwaters.get(tp) is None:
                continue  # never fetched: no position says more
            if progress.delivered != progress.checked:
                progress.checked = progress.delivered
                continue
            asks.append(tp)
        return asks

    def newest(self, highwaters: Mapping[K, int | None]) -> int | None:
        """The event time the inputs allow the watermark to reach (before the lateness), or
        None while an input holds it where it is."""
        behind: list[int] = []
        for tp, progress in self.inputs.items():
            highwater = highwaters.get(tp)
            if progress.delivered is None:
                if highwater is None or progress.idle_at != highwater:
                    return None
            elif progress.delivered + 1 < (highwater or 0):
                if progress.newest is None:
                    return None
                behind.append(progress.newest)
        if behind:
            return min(behind)
        return max((p.newest for p in self.inputs.values() if p.newest is not None), default=None)

    def advance(self, highwaters: Mapping[K, int | None]) -> int | None:
        """The new watermark, or None when it does not move forward."""
        newest = self.newest(highwaters)
        if newest is None:
            return None
        watermark = newest - self.lateness_ms
        if self.watermark is not None and watermark <= self.watermark:
            return None
        self.watermark = watermark
        return watermark

    def _progress(self, tp: K) -> InputProgress:
        progress = self.inputs.get(tp)
        if progress is None:  # an input the partition was not told of: it takes part from now
            progress = self.inputs[tp] = InputProgress()
        return progress
