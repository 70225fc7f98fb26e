"""The live detection delay with the journeys on, while events stream in at a steady rate.

``bench/run.py`` runs this and takes the markdown section it prints; alone:
``python bench/live_load.py [--rate 5000] [--seconds 120] [--gap 60]``.

One ``cartpulse worker --clock live`` with the default settings and the journeys on (8
partitions, RocksDB, the shipped policy) reads the audience's profiles and consents first;
then ``cartpulse simulate``'s traffic streams in at ``--rate`` events a second of wall time,
each event's ``occurred_at`` the moment it is sent. The traffic is taken from the simulation
once its sessions have ramped up (sessions last minutes, so the first minutes of a simulation
are thinner than its rate), so the rate holds from the first second. Every abandonment whose
deadline (last activity + gap) falls while events are streaming is measured: its delay is its
record's time on the topic minus the deadline. The gap is shorter than the default 30 minutes
so that periods close while the load is on.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
from aiokafka import AIOKafkaProducer  # noqa: E402

from streams.agents.worker_process import worker_env, worker_process  # noqa: E402
from streams.contract.events import parse_time  # noqa: E402
from streams.contract.topics import Topic, TopicCatalogue, input_topic_for  # noqa: E402
from streams.offline.audience import AudienceConfig  # noqa: E402
from streams.offline.simulate import SimulationConfig, simulate  # noqa: E402
from streams.runtime.kafka import delete_topics, read_records, topic_counts  # noqa: E402
from streams.runtime.settings import Settings, load_settings  # noqa: E402
from streams.tools.replay import wait_for_audience  # noqa: E402
from tests.support.live_offline import (  # noqa: E402
    COUPON_SECRET,
    cartpulse,
    cpu_seconds,
    produce_audience,
    while_running,
    write_audience,
)

SHOPPERS = 10_000
RAMP_S = 300.0  # simulated time skipped: the sessions' ramp-up
RATE_FACTOR = 1.4  # the simulation's rate over the rate wanted: past RAMP_S it runs at ~0.74x
START_MS = 1_781_100_000_000


@dataclass(frozen=True, slots=True)
class Load:
    """What streamed in, and the delays of the abandonments it closed."""

    rate: float  # the rate asked for
    sent: int
    sent_s: float
    gap_s: float
    delays: list[float]  # seconds, sorted
    abandonments: int  # on the topic in all
    decisions: int
    cpu_s: float  # the worker's user + system time
    time_scale: float  # the simulation's times were multiplied by it to hold the rate

    def quantile(self, q: float) -> float:
        return self.delays[min(len(self.delays) - 1, int(q * len(self.delays)))]


Traffic = list[tuple[int, Topic, bytes, dict[str, object]]]


def traffic(rate: float, seconds: float) -> tuple[Traffic, float]:
    """``rate`` x ``seconds`` simulated events after the ramp-up: (ms from the start, topic,
    key, event). The simulation runs a little faster than ``rate`` (its sessions ramp up for
    hours), and its times are scaled to span exactly ``seconds``: pauses within a session
    scale by that factor, returned beside them."""
    wanted = int(rate * seconds)
    config = SimulationConfig(
        events=10**9, rate=rate * RATE_FACTOR, shoppers=SHOPPERS, start_ms=START_MS, seed=11
    )
    begin = START_MS + int(RAMP_S * 1000)
    out: Traffic = []
    for event in simulate(config):
        at = parse_time(str(event["occurred_at"]))
        if at < begin:
            continue
        topic = input_topic_for(str(event["type"]))
        out.append((at - begin, topic, str(event["session_id"]).encode(), event))
        if len(out) == wanted:
            break
    scale = seconds * 1000 / max(1, out[-1][0])
    return [(int(at * scale), topic, key, event) for at, topic, key, event in out], scale


async def stream(settings: Settings, events: Traffic) -> tuple[int, float]:
    """Send each event at its moment from now, ``occurred_at`` the wall time; (sent, seconds)."""
    name = TopicCatalogue.of(settings).name
    topics = {topic: name(topic) for topic in (Topic.CLICKSTREAM, Topic.CART)}
    producer = AIOKafkaProducer(**settings.kafka_client_options(), linger_ms=5)
    await producer.start()
    try:
        began = time.time()
        now = began
        for offset_ms, topic, key, event in events:
            due = began + offset_ms / 1000
            if due > now:
                now = time.time()
                if due > now + 0.002:
                    await asyncio.sleep(due - now)
                    now = time.time()
            event["occurred_at"] = int(max(due, now) * 1000)
            await producer.send(topics[topic], orjson.dumps(event), key=key)
        await producer.flush()
        return len(events), time.time() - began
    finally:
        await producer.stop()


async def measure(rate: float, seconds: float, gap_s: float, work: Path) -> Load:
    settings = load_settings(topic_prefix=f"live{uuid.uuid4().hex[:8]}.")
    env = worker_env(
        settings,
        work / "state",
        CARTPULSE_JOURNEYS_ENABLED="true",
        CARTPULSE_COUPON_SECRET=COUPON_SECRET,
    )
    events, scale = await asyncio.to_thread(traffic, rate, seconds)
    customers, consents = write_audience(work, AudienceConfig(SHOPPERS, START_MS - 86_400_000, 11))
    name = TopicCatalogue.of(settings).name
    try:
        await asyncio.to_thread(cartpulse, env, ROOT, "topics", "create")
        await produce_audience(settings, customers, consents)
        log = work / "worker.log"
        args = ("--clock", "live", "--gap", f"{gap_s:g}s")
        with worker_process(env, log, *args, loglevel="info", cwd=ROOT) as worker:
            await while_running(worker, log, wait_for_audience(settings, 600))
            cpu_before = cpu_seconds(worker.pid)
            started = time.time()
            sent, sent_s = await while_running(worker, log, stream(settings, events))
            await asyncio.sleep(gap_s + 15)  # the last sessions' deadlines, and a margin
            cpu = cpu_seconds(worker.pid) - cpu_before
        ended = started + sent_s
        delays, abandonments = [], 0
        async for record in read_records(settings, name(Topic.ABANDONMENTS)):
            abandonments += 1
            deadline = parse_time(orjson.loads(record.value)["last_activity_at"]) / 1000 + gap_s
            if started + gap_s <= deadline <= ended:  # closed while the load was on
                delays.append(record.timestamp / 1000 - deadline)
        decisions = (await topic_counts(settings, [name(Topic.DECISIONS)]))[name(Topic.DECISIONS)]
    finally:
        await delete_topics(settings, settings.topic_prefix)
    delays.sort()
    return Load(rate, sent, sent_s, gap_s, delays, abandonments, decisions, cpu, scale)


def section(load: Load) -> str:
    p99 = load.quantile(0.99)
    verdict = "met" if p99 <= 1.0 else "**not met**"
    return (
        f"`cartpulse worker --clock live --gap {load.gap_s:g}s`, the journeys on, the default "
        f"settings otherwise (8 partitions, RocksDB, the shipped policy), {SHOPPERS:,} "
        "shoppers' profiles and consents read first; simulated traffic (`cartpulse simulate`'s "
        f"shape, seed 11, past its ramp-up, its times scaled by {load.time_scale:.2f} to hold "
        f"the rate) streamed in at {load.rate:,.0f} events/s, each event stamped with the "
        "moment it was sent.\n\n"
        "| what | result |\n|---|---|\n"
        f"| events streamed | {load.sent:,} in {load.sent_s:.1f} s "
        f"(**{load.sent / load.sent_s:,.0f} events/s**) |\n"
        f"| abandonments closed while streaming, measured | {len(load.delays):,} "
        f"({load.abandonments:,} on the topic in all; {load.decisions:,} journey decisions) |\n"
        f"| delay, deadline (last activity + gap) → abandonment on the topic | p50 "
        f"{load.quantile(0.5):.2f} s, p90 {load.quantile(0.9):.2f} s, **p99 {p99:.2f} s**, "
        f"max {load.delays[-1]:.2f} s (target p99 ≤ 1 s: {verdict}) |\n"
        f"| the worker's CPU while streaming and after | {load.cpu_s:.1f} s "
        f"({load.cpu_s / (load.sent_s + load.gap_s + 15):.0%} of one core) |"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--gap", type=float, default=60.0, help="seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cartpulse-live-") as tmp:
        load = await measure(args.rate, args.seconds, args.gap, Path(tmp))
    print(section(load))  # noqa: T201


if __name__ == "__main__":
    asyncio.run(main())
