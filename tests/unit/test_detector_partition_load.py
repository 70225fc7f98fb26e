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


async def rebalanced(flushed: bool, generations: tuple[int, int], back: set[int]) -> list[int]:
    """The table reads of a shell that took sessions on partitions 0 and 1 (its state flushed
    or not), had both revoked in generation ``generations[0]``, was given ``back`` in
    ``generations[1]``, and then took a record on each partition it owns."""
    table: dict[bytes, bytes] = {}
    reads: list[int] = []
    worker = shell(table, reads)
    worker.assign({0, 1}, generations[0])
    await worker.on_batch(
        [
            Message(cart_event(event_id="a", session_id="s0"), key=b"s0", partition=0),
            Message(cart_event(event_id="b", session_id="s1"), key=b"s1", partition=1),
        ]
    )
    if flushed:
        await worker.drain()
    reads.clear()
    worker.revoke({0, 1})
    worker.assign(back, generations[1])
    for partition in sorted(back):
        late = cart_event(event_id=f"late{partition}", session_id=f"t{partition}")
        await worker.on_batch([Message(late, key=late_key(partition), partition=partition)])
        assert len(worker.partitions[partition].detector) == 2  # its session, and the new one
    return reads


def late_key(partition: int) -> bytes:
    return b"t%d" % partition


async def test_a_clean_partition_given_back_by_the_next_generation_is_not_loaded_again() -> None:
    assert await rebalanced(flushed=True, generations=(4, 5), back={0, 1}) == []


async def test_a_partition_given_back_after_a_missed_generation_is_loaded_from_the_table() -> None:
    # generation 5 went by without this worker: another one may have owned and changed them
    assert await rebalanced(flushed=True, generations=(4, 6), back={0, 1}) == [0, 1]


async def test_a_partition_with_changes_not_in_the_table_is_loaded_from_the_table() -> None:
    # unflushed, the table lacks the sessions: the reload finds none, the records come again
    table: dict[bytes, bytes] = {}
    reads: list[int] = []
    worker = shell(table, reads)
    worker.assign({0}, 4)
    await worker.on_batch([Message(cart_event(event_id="a", session_id="s0"), key=b"s0")])
    reads.clear()
    worker.revoke({0})
    worker.assign({0}, 5)
    await worker.on_batch([Message(cart_event(event_id="b", session_id="t0"), key=b"t0")])
    assert reads == [0]
    assert len(worker.partitions[0].detector) == 1


async def test_a_kept_partition_not_given_back_is_let_go() -> None:
    assert await rebalanced(flushed=True, generations=(4, 5), back={1}) == []
    table: dict[bytes, bytes] = {}
    worker = shell(table, [])
    worker.assign({0}, 1)
    await worker.on_batch([Message(cart_event(event_id="a", session_id="s0"), key=b"s0")])
    await worker.drain()
    worker.revoke({0})
    worker.assign(set(), 2)
    worker.assign({0}, 3)  # back later: another worker owned it in generation 2
    assert worker._kept == {}


async def test_records_of_a_revoked_partition_are_not_taken() -> None:
    table: dict[bytes, bytes] = {}
    acked: list[Message] = []
    worker = detector_shell(Sent(), table=table, ack=acked.append)
    worker.assign({0, 1}, 1)
    worker.revoke({1})
    await worker.on_batch(
        [
            Message(cart_event(event_id="a", session_id="s0"), key=b"s0", partition=0),
            Message(cart_event(event_id="b", session_id="s1"), key=b"s1", partition=1),
        ]
    )
    await worker.drain()
    assert set(worker.partitions) == {0}
    assert [m.partition for m in acked] == [0]
    assert {key.split(b":")[0] for key in table} == {b"0"}  # nothing written for partition 1
