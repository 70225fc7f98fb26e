"""A Faust table whose changes of one partition are written in one go (``ChangelogTable.write``).

Why: Faust writes a table key by key. Each write puts the key into the partition's RocksDB
database, wraps its changelog record in a ``FutureMessage`` that waits in the producer's buffer
until a task hands it to aiokafka, record by record, and on delivery puts the changelog offset
into RocksDB again (the persisted offset Faust's recovery starts from). The live worker wrote a
changelog record for every event it took, and that path was the largest share of its main
thread (docs/architecture.md, "Table writes"). ``write`` does the same work once per flush:
one RocksDB write batch, the changelog records appended to aiokafka record batches, and the
persisted offset put once, when the last batch is delivered. The database and the changelog end
up as Faust's own writes leave them, so Faust's recovery and standbys read them as before.

``partition_items`` reads one partition's database, for a partition's load. A table written
here must not be written through Faust as well: records of one changelog
partition sent both ways could reach the broker out of order.

Leans on faust-streaming 0.15.3's table and store internals, as ``batching.py`` does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import rocksdict
from faust.types import TP
from faust.types.enums import ProcessingGuarantee

Change = tuple[bytes, bytes | None]  # a key and its new value (None: deleted, a tombstone)


class ChangelogTable:
    """A bytes-to-bytes Faust ``Table`` (``StateTable``) with ``write`` for a partition's
    changes. Reads and single writes go to the table as they are; ``write`` needs no current
    event (its partition is named)."""

    def __init__(self, app: Any, table: Any) -> None:
        if app.conf.processing_guarantee is not ProcessingGuarantee.AT_LEAST_ONCE:
            raise ValueError(
                "ChangelogTable writes outside Faust's transactions: at_least_once only"
            )
        self.app = app
        self.table = table

    def items(self) -> Iterable[tuple[bytes, bytes | None]]:
        return self.table.items()  # type: ignore[no-any-return]  # Faust's Table is untyped here

    def keys(self) -> Iterable[bytes]:
        return self.table.keys()  # type: ignore[no-any-return]

    def get(self, key: bytes, /) -> bytes | None:
        return self.table.get(key)  # type: ignore[no-any-return]

    def pop(self, key: bytes, default: None, /) -> bytes | None:
        return self.table.pop(key, default)  # type: ignore[no-any-return]

    def __setitem__(self, key: bytes, value: bytes, /) -> None:
        self.table[key] = value

    def partition_items(self, partition: int) -> Iterator[tuple[bytes, bytes | None]]:
        """What the table holds for one of its partitions, for a partition's load.

        Faust's RocksDB store keeps one database per partition, and a key is written into its
        own partition's (by Faust, under the current event, and by ``write``), so only that
        database is read; ``items()`` would read every assigned partition's. Other stores
        (``memory://``) hold one map: it is read whole, so the caller still keeps only its
        partition's keys."""
        store = self.table.data
        database_of = getattr(store, "_db_for_partition", None)
        if database_of is None:
            yield from self.table.items()
            return
        yield from store._visible_items(database_of(partition))

    async def write(
        self, partition: int, changes: Sequence[Change]
    ) -> asyncio.Future[list[Any]] | None:
        """Write ``changes`` (in order; a later change of a key wins) to the partition's local
        store at once, and hand their changelog records to the producer; returns their
        delivery (None when there was nothing to write). Waits only while the producer's
        previous batch of the partition is not yet taken (aiokafka's backpressure). Once the
        last record is delivered its offset is the partition's persisted offset."""
        if not changes:
            return None
        store = self.table.data
        _write_store(store, partition, changes)
        producer = self.app.producer._ensure_producer()  # aiokafka's AIOKafkaProducer
        topic = self.table.changelog_topic.get_topic_name()
        sent: list[asyncio.Future[Any]] = []
        batch, count = producer.create_batch(), 0
        for key, value in changes:
            if batch.append(key=key, value=value, timestamp=None) is None:  # full
                sent.append(await producer.send_batch(batch, topic, partition=partition))
                batch, count = producer.create_batch(), 0
                batch.append(key=key, value=value, timestamp=None)  # a batch takes its first
            count += 1
        last = await producer.send_batch(batch, topic, partition=partition)
        sent.append(last)
        tp = TP(topic, partition)

        def persisted(delivered: asyncio.Future[Any]) -> None:
            if not delivered.cancelled() and delivered.exception() is None:
                # the batch's result names its first record's offset
                store.set_persisted_offset(tp, delivered.result().offset + count - 1)

        last.add_done_callback(persisted)
        return asyncio.gather(*sent)


def _write_store(store: Any, partition: int, changes: Sequence[Change]) -> None:
    """The changes into the table's local store: one write batch into the partition's RocksDB
    database, or each into an in-memory store's map (``memory://``)."""
    database_of = getattr(store, "_db_for_partition", None)
    if database_of is None:
        data = store.data
        for key, value in changes:
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        return
    if not store.use_rocksdict:
        raise TypeError("ChangelogTable writes RocksDB through rocksdict only")
    batch = rocksdict.WriteBatch(raw_mode=True)
    for key, value in changes:
        if value is None:
            batch.delete(key)
        else:
            batch.put(key, value)
    database_of(partition).write(batch)
