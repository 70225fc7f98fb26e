"""Wake-ups for every input partition, from the leader only.

Faust cannot write tables from ``app.timer`` and a partition with no traffic gets no events, so
the leader sends one small record per partition to a topic co-partitioned with the inputs. The
detector handles each tick on the partition it arrives on: in ``live`` mode it moves that
partition's watermark to the wall clock (less the allowed lateness), in both modes it persists
and acknowledges pending work. A tick may also carry an explicit event-time ``watermark``
(``cartpulse watermark``), which is how a replay says that its input has ended. The tick's
format is streams/core/watermarks.py's, which ``cartpulse watermark`` uses too.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from streams.agents.ports import Clock
from streams.core.watermarks import ticks

__all__ = ["SendToPartition", "send_ticks"]

# Hands one record to the producer for one partition of a topic: (topic, value, partition).
SendToPartition = Callable[[str, bytes, int], Awaitable[object]]


async def send_ticks(
    send: SendToPartition,
    topic: str,
    partitions: int,
    watermark: int | None = None,
    wall_clock: Clock = time.time,
) -> None:
    """One tick to each partition of ``topic``; waits until the producer has them."""
    for partition, value in ticks(partitions, int(wall_clock() * 1000), watermark):
        await send(topic, value, partition)
