"""A partition's load reads that partition's table entries only, when the table can say which."""

from __future__ import annotations

from collections.abc import Iterator

from streams.agents.detector import DetectorShell
from tests.support.events import cart_event
from tests.unit.test_detector_shell import Message, Sent
from tests.unit.test_detector_shell import shell as detector_shell


def shell(table: dict[bytes, bytes], reads: list[int] | None) -> DetectorShell:
    def partition_items(partition: int) -> Iterator[tuple[bytes, bytes]]:
        assert reads is not None
        reads.append(partition)
        prefix = b"%d:" % partition
        return iter([(k, v) for k, v in table.items() if k.startswith(prefix)])

    items = None if reads is None else partition_items
    return detector_shell(Sent(), table=table, partition_items=items)


async def saved_sessions() -> dict[bytes, bytes]:
    """The table after one session was taken on partition 0 and two on partition 1."""
    table: dict[bytes, bytes] = {}
    first = shell(table, None)
    await first.on_batch(
        [
            Message(cart_event(event_id="a", session_id="s0"), key=b"s0", partition=0),
            Message(cart_event(event_id="b", session_id="s1"), key=b"s1", partition=1),
            Message(cart_event(event_id="c", session_id="s2"), key=b"s2", partition=1),
        ]
    )
    await first.drain()
    return table


async def test_a_load_asks_only_for_its_partition() -> None:
    table = await saved_sessions()
    reads: list[int] = []
    restarted = shell(table, reads)

    late = cart_event(event_id="d", session_id="s3")
    await restarted.on_batch([Message(late, key=b"s3", partition=1, offset=9)])

    assert reads == [1]
    assert len(restarted.partitions[1].detector) == 3  # s1, s2 restored, s3 taken


async def test_without_the_port_the_whole_table_is_read_and_filtered() -> None:
    table = await saved_sessions()
    restarted = shell(table, None)

    await restarted.on_batch([Message(cart_event(event_id="d", session_id="s3"), key=b"s3")])

    assert len(restarted.partitions[0].detector) == 2  # s0 restored, s3 taken
