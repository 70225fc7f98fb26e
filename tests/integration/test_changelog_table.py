"""``ChangelogTable.write`` on the real broker and a real RocksDB store: a partition's changes
land in its local database in one write and on its changelog partition in order, deletions
as tombstones, and the persisted offset Faust's recovery starts from is the last record's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams.runtime.kafka import read_records
from streams.runtime.settings import Settings
from tests.support.worker_app import worker_app_prints

pytestmark = pytest.mark.integration

BIG = 300 * 1024  # two of them overflow one record batch (the worker's is 512 KiB)

WRITES = """
import asyncio, json
from faust.types import TP
from streams.agents.changelog import ChangelogTable

async def main():
    table = app.tables["sessions"]
    await app.producer.start()
    try:
        await table.changelog_topic.maybe_declare()
        writer = ChangelogTable(app, table)
        first = [(b"2:a", b"1"), (b"2:b", b"2"), (b"2:c", b"3")]
        await (await writer.write(2, first))
        big = [(b"2:big%d" % n, bytes([65 + n]) * BIG) for n in range(3)]
        await (await writer.write(2, [(b"2:b", None), (b"2:a", b"4"), *big, (b"2:z", b"9")]))
        assert await writer.write(2, []) is None
        store = table.data
        topic = table.changelog_topic.get_topic_name()
        held = {k.decode(): len(v) if len(v) > 8 else v.decode()
                for k, v in store._db_for_partition(2).items() if not k.startswith(b"__faust")}
        print(json.dumps({"topic": topic, "held": held,
                          "persisted": store.persisted_offset(TP(topic, 2))}))
    finally:
        await app.producer.stop()

app.loop.run_until_complete(main())
""".replace("BIG", str(BIG))


async def test_a_partitions_changes_reach_its_database_and_changelog_in_order(
    settings: Settings, tmp_path: Path
) -> None:
    env: dict[str, str | None] = {
        "CARTPULSE_STORE": "rocksdb://",
        "CARTPULSE_TOPIC_PREFIX": settings.topic_prefix,
        "CARTPULSE_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "CARTPULSE_TOPIC_PARTITIONS": "4",
    }
    printed = json.loads(worker_app_prints(tmp_path, WRITES, env).splitlines()[-1])

    records = [r async for r in read_records(settings, printed["topic"])]
    assert {r.partition for r in records} == {2}
    assert [(r.key, r.value if r.value is None or len(r.value) < 8 else len(r.value)) for r in records] == [
        (b"2:a", b"1"), (b"2:b", b"2"), (b"2:c", b"3"),
        (b"2:b", None), (b"2:a", b"4"),
        (b"2:big0", BIG), (b"2:big1", BIG), (b"2:big2", BIG), (b"2:z", b"9"),
    ]  # fmt: skip
    held = {"2:a": "4", "2:c": "3", "2:big0": BIG, "2:big1": BIG, "2:big2": BIG, "2:z": "9"}
    assert printed["held"] == held
    # recovery reads the changelog from past this offset: the last record's (the last of three
    # batches, which holds two)
    assert printed["persisted"] == records[-1].offset
