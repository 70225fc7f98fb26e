"""Wake-ups for every input partition, from the leader only.

Faust cannot write tables from ``app.timer`` and a partition with no traffic gets no events, so
the leader sends one small record per partition to a topic co-partitioned with the inputs. The
detector handles each tick on the partition it arrives on: in ``live`` mode it moves that
partition's watermark to the wall clock (less the allowed lateness), in both modes it persists
and acknowledges pending work. A tick may also carry an explicit event-time ``watermark``
(``cartpulse watermark``), which is how a replay says that its input has ended.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

SendToPartition = Callable[[str, bytes, int], Awaitable[Any]]


def tick_value(wall_ms: int, watermark: int | None = None) -> bytes:
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


async def send_ticks(
    send: SendToPartition,
    topic: str,
    partitions: int,
    watermark: int | None = None,
    wall_clock: Callable[[], float] = time.time,
) -> None:
    """One tick to each partition of ``topic``; waits until the producer has them."""
    value = tick_value(int(wall_clock() * 1000), watermark)
    for partition in range(partitions):
        await send(topic, value, partition)
