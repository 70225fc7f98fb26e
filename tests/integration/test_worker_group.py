"""Several workers: a consumer group of three ``cartpulse worker`` processes (journeys on) over
8 partitions, one of them SIGKILLed mid-stream and a fourth added later, as a scaled
deployment loses a pod and gains one.

In event mode the group writes what ``cartpulse detect --flush`` piped into ``cartpulse
journeys`` writes on the same input; in live mode every session that went silent gets its
abandonment, within the gap and a few seconds, across both rebalances. A crash may repeat
output, and only as the same record under the same id (docs/semantics.md, "Determinism").
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from streams.contract.topics import Topic, TopicCatalogue
from streams.runtime.kafka import read_all
from streams.runtime.settings import Settings
from streams.tools.replay import wait_for_audience, wait_for_journeys
from tests.conftest import consume_all
from tests.support.cli import run_cli, start_cli, tail
from tests.support.live_offline import (
    COMMANDS,
    JOURNEYS,
    ROOT,
    offline,
    produce_audience,
    rees46_traffic,
)
from tests.support.worker_group import WorkerGroup
from tests.support.workers import wait_for_count

pytestmark = pytest.mark.integration

SAMPLE = ROOT / "data" / "rees46" / "multicategory-2019-10-01-head.csv"
# 17,434 events over 2 h 50 min of event time, imported in about 22 s: a second of the import
# is some 8 minutes of event time.
RATE = "800"
# The importer writes clickstream and cart at once, and a worker may read one ahead of the
# other by a fetch or, across a rebalance, by a partition's restore: the allowed lateness
# covers that skew, so no event is late (docs/semantics.md, "Several inputs").
LATENESS = "20m"
# A SIGKILLed worker's partitions move once its session times out: the shortest the broker
# allows, so the test waits the least and a shopper whose deadline falls in the dead time too.
SESSION_TIMEOUT = "6s"

# What these tests found (issue 17, "Several workers"), all in the batch path
# (streams/agents/batching.py). Faust fetches records and drops them (a fetch cut off by a
# rebalance, a partition not in its active set) with the position past them: route_fetch
# fetches them again from the offset the partition delivers next (it went back one past it,
# and lost the record at the committed offset: an event, an order, an abandonment), and
# getmany seeks a partition back to the first record it dropped. A never-committed partition
# is sought to its first offset. Faust resumes the inputs and the flow before it seeks them to
# their committed offsets: a new owner took a killed worker's records from wherever its
# consumer stood, before the seek, and closed periods early; records of a partition not
# sought since its assignment are now skipped. The journeys' inputs take the batch path, so
# none stalls in Faust's flow control. Offline, ``journeys --orders`` took no order from a
# CSV export (each line was refused as JSON), so it sent the reminders the orders stop.
# A session whose deadline falls while the killed worker's partitions are dead waits for the
# session timeout and the rebalance besides (seen: 15.2 s after its last event with a 5 s gap):
# the live test allows it that much more, and every other session gap + 10 s.
DEAD_WINDOW_S = 6.0


def distinct(records: list[bytes], field: str) -> dict[str, bytes]:
    """``records`` by their ``field``; a repeat must be the same bytes as its first copy."""
    first: dict[str, bytes] = {}
    for record in records:
        key = orjson.loads(record)[field]
        assert first.setdefault(key, record) == record, f"a repeat of {key} differs"
    return first


def is_repeat(decision: bytes, abandonments: dict[str, bytes]) -> bool:
    """Whether ``decision`` says an abandonment the journeys had taken came again."""
    made = orjson.loads(decision)
    repeat = (made["action"], made["reason"]) == ("ignored", "duplicate")
    return repeat and made["abandonment_id"] in abandonments


def differences(live: dict[str, bytes], offline: dict[str, bytes]) -> str:
    """What the group wrote against offline, by id: missing, extra, and the same id with other
    bytes (a few of each shown)."""
    missing = sorted(offline.keys() - live.keys())
    extra = sorted(live.keys() - offline.keys())
    changed = sorted(k for k in live.keys() & offline.keys() if live[k] != offline[k])
    shown = [f"{len(missing)} missing, {len(extra)} extra, {len(changed)} changed"]
    shown += [f"  missing: {offline[k].decode()[:300]}" for k in missing[:3]]
    shown += [f"  extra:   {live[k].decode()[:300]}" for k in extra[:3]]
    for k in changed[:3]:
        shown += [f"  live:    {live[k].decode()[:600]}", f"  offline: {offline[k].decode()[:600]}"]
    return "\n".join(shown)


async def test_event_mode_group_that_loses_and_gains_a_worker_equals_offline(
    settings: Settings, tmp_path: Path
) -> None:
    traffic = await asyncio.to_thread(rees46_traffic, tmp_path / "traffic", SAMPLE)
    wanted = await asyncio.to_thread(offline, traffic, tmp_path / "offline")
    abandonments = (tmp_path / "offline" / "abandonments.jsonl").read_bytes().splitlines()
    assert len(abandonments) > 3000
    assert len(wanted.commands) > 3000

    eight = settings.model_copy(update={"topic_partitions": 8})
    name = TopicCatalogue.of(eight).name
    assert run_cli(eight, "topics", "create").returncode == 0
    await produce_audience(eight, traffic.customers, traffic.consents)
    args = ("--clock", "event", "--lateness", LATENESS)
    env = {**JOURNEYS, "CARTPULSE_SESSION_TIMEOUT": SESSION_TIMEOUT}
    with WorkerGroup(eight, tmp_path / "group", *args, env=env) as group:
        first, doomed, _ = group.join(), group.join(), group.join()
        await wait_for_audience(eight, 60)
        log = tmp_path / "import.log"
        importer = start_cli(eight, log, "import", "--quiet", "--rate", RATE, str(SAMPLE))
        try:
            # Mid-stream: the detector has closed periods, the journeys hold them (in event
            # mode they decide when a watermark moves their clock, docs/semantics.md).
            assert await wait_for_count(eight, name(Topic.ABANDONMENTS), 1, within=60, poll=0.2)
            group.kill(doomed)
            await asyncio.sleep(10)  # the group notices (session timeout) and moves its work
            group.join()
            assert await asyncio.to_thread(importer.wait, 120) == 0, tail(log)
        finally:
            if importer.poll() is None:
                importer.kill()
        assert importer.returncode == 0
        marked = await asyncio.to_thread(run_cli, eight, "watermark", "end", "--timeout", "90")
        assert marked.returncode == 0, marked.stderr
        await wait_for_journeys(eight, 90)
        assert len(group.alive()) == 3, [member.returncode for member in group.members]
        assert first.poll() is None

    found = [value async for value in read_all(eight, name(Topic.ABANDONMENTS))]
    sent: list[bytes] = []
    for topic in COMMANDS:
        sent += [value async for value in read_all(eight, name(topic))]
    decided = [value async for value in read_all(eight, name(Topic.DECISIONS))]
    live_found = distinct(found, "abandonment_id")
    offline_found = distinct(abandonments, "abandonment_id")
    assert live_found == offline_found, differences(live_found, offline_found)
    live_sent, offline_sent = distinct(sent, "command_id"), distinct(wanted.commands, "command_id")
    assert live_sent == offline_sent, differences(live_sent, offline_sent)
    # A repeated abandonment is decided again, as a repeat: that decision is the only one
    # offline has not.
    repeats = {d for d in set(decided) - set(wanted.decisions) if is_repeat(d, offline_found)}
    assert set(decided) - repeats == set(wanted.decisions)


GAP_S = 5  # live mode's gap: a session silent this long is abandoned
SESSIONS = 32  # one starts every 0.6 s: 19 s of traffic, across the kill and the join


def cart_event(session: str, step: int, now_ms: int) -> bytes:
    return orjson.dumps({
        "event_id": f"{session}-{step}",
        "type": "cart_item_added",
        "occurred_at": now_ms,
        "session_id": session,
        "customer_id": f"c-{session}",
        "product": {"id": f"sku-{step}", "price": "19.99", "currency": "USD"},
    })  # fmt: skip


async def test_live_group_that_loses_and_gains_a_worker_abandons_every_silent_session_in_time(
    settings: Settings, tmp_path: Path
) -> None:
    eight = settings.model_copy(update={"topic_partitions": 8})
    name = TopicCatalogue.of(eight).name
    assert run_cli(eight, "topics", "create").returncode == 0
    args = ("--clock", "live", "--gap", f"{GAP_S}s")
    env = {**JOURNEYS, "CARTPULSE_SESSION_TIMEOUT": SESSION_TIMEOUT}
    last_sent: dict[str, float] = {}  # session → wall time its last event was sent
    killed_at = math.inf
    with WorkerGroup(eight, tmp_path / "group", *args, env=env) as group:
        _, doomed, _ = group.join(), group.join(), group.join()
        await group.ready(within=60)
        producer = AIOKafkaProducer(**eight.kafka_client_options())
        await producer.start()
        try:
            for index in range(SESSIONS):
                if index == 8:
                    group.kill(doomed)  # 5 s in: its partitions are dead until they move
                    killed_at = time.time()
                if index == 20:
                    group.join()  # 12 s in: the group rebalances again
                session = f"live-{index}"
                for step in range(2):  # two events, then silence
                    now = time.time()
                    event = cart_event(session, step, int(now * 1000))
                    await producer.send(name(Topic.CART), event, key=session.encode())
                    last_sent[session] = now
                    await asyncio.sleep(0.3)
        finally:
            await producer.stop()
        # Repeats count in consume_all's number: wait out the last session's allowed delay first.
        await asyncio.sleep(max(last_sent.values()) + GAP_S + 12 - time.time())
        records = await consume_all(eight, name(Topic.ABANDONMENTS), SESSIONS, within=10)
        assert len(group.alive()) == 3

    found = distinct([record.value for record in records], "abandonment_id")
    abandoned = {orjson.loads(value)["session_id"] for value in found.values()}
    assert abandoned == set(last_sent), f"lost: {sorted(set(last_sent) - abandoned)}"
    arrived: dict[str, float] = {}
    for record in records:
        session = orjson.loads(record.value)["session_id"]
        arrived[session] = min(arrived.get(session, math.inf), record.timestamp / 1000)
    delays = {session: arrived[session] - last_sent[session] for session in last_sent}

    def allowed(session: str) -> float:
        deadline = last_sent[session] + GAP_S
        dead = killed_at <= deadline <= killed_at + DEAD_WINDOW_S
        return GAP_S + 10 + (DEAD_WINDOW_S if dead else 0)

    late = {s: round(d, 1) for s, d in delays.items() if d > allowed(s)}
    assert not late, f"detected later than allowed after the last event: {late}"
    early = {session: round(delay, 1) for session, delay in delays.items() if delay < GAP_S - 1}
    assert not early, f"detected before the gap was over: {early}"
    periods = Counter(orjson.loads(value)["session_id"] for value in found.values())
    split = {
        session: [round(last_sent[session] - killed_at, 1), n]
        for session, n in periods.items()
        if n > 1
    }
    # a partition moved by the kill or the join holds its sessions' next events in its backlog:
    # the wall clock waits for them (docs/semantics.md, "Clock modes"), one period each
    assert not split, f"abandoned twice under two ids (last event - kill in s, periods): {split}"
