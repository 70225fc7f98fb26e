"""The worker as users run it, over a day of traffic, and its peers on the same topics.

``bench/run.py``'s ``whole_worker_bench`` calls this. The traffic is ``cartpulse simulate``'s
shape at a low rate, so its events span more than a day of event time: periods close while the
worker is timed, abandonments come out, journeys start and their steps fire on the watermark.
The audience's profiles and consents (tests/support/live_offline.py) let the journeys send.

Two cartpulse runs, each on its own topic prefix with the same file imported, each a
``cartpulse worker --clock event`` with the default settings (RocksDB, 8 partitions, the shipped
policy), run as a replay runs it (tests/support/live_offline.py): the audience first (only with
the journeys), then the events imported, a worker reading them and ``cartpulse watermark end``
when they are all in Kafka:

- the default worker: the detector and the journeys;
- the detector alone (``CARTPULSE_JOURNEYS_ENABLED=false``).

A worker's time is from the first record it wrote (an order or an abandonment) to the last one
it wrote (a command or a decision with the journeys on; an order or an abandonment without).
Its first output comes a little after its first read (the first order in the file): the time
is short of the whole by that much. The Quix Streams job (``bench/quix_sessions.py``) and the
plain consumer (``bench/run.py``) read the default run's input topics afterwards.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from streams.agents.worker_process import worker_env, worker_process  # noqa: E402
from streams.contract.topics import Topic, TopicCatalogue  # noqa: E402
from streams.offline.simulate import SimulationConfig  # noqa: E402
from streams.runtime.kafka import read_records, topic_counts  # noqa: E402
from streams.runtime.settings import Settings  # noqa: E402
from streams.tools.replay import wait_for_audience, wait_for_journeys  # noqa: E402
from tests.support.live_offline import (  # noqa: E402
    COUPON_SECRET,
    Traffic,
    _cli_async,
    cartpulse,
    produce_audience,
    while_running,
    write_traffic,
)

START_MS = 1_781_100_000_000  # 2026-06-10T14:00:00Z, 10:00 in New York (the audience's zone)
HOURS = 26.0  # nominal: the simulator's rate ramps up, so the file spans a little less
SHOPPERS = 10_000
PATIENCE = 900.0
BUFFER_FULL = "producer buffer full"
DETECTOR_OUT = (Topic.ORDERS, Topic.ABANDONMENTS)
JOURNEYS_OUT = (Topic.SEND_SMS, Topic.SEND_EMAIL, Topic.DECISIONS)


@dataclass(frozen=True, slots=True)
class WorkerRun:
    """What one worker run read and wrote, and in how long."""

    label: str
    events: int
    seconds: float
    abandonments: int
    commands: int
    decisions: int
    buffer_full: int  # "producer buffer full" warnings in the worker's log

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    def per_s(self, count: int) -> float:
        return count / self.seconds


def shape(events: int) -> SimulationConfig:
    """``events`` events over about a day (26 h nominal), returning customers among them."""
    return SimulationConfig(
        events=events,
        rate=events / (HOURS * 3600),
        shoppers=SHOPPERS,
        start_ms=START_MS,
        seed=7,
    )


def traffic_of(work: Path, events: int) -> tuple[Traffic, str]:
    """The file and its audience, and a line on its sessions' sizes."""
    traffic = write_traffic(work / "traffic", shape(events))
    sizes = Counter(
        orjson.loads(line)["session_id"] for line in traffic.events.read_bytes().splitlines()
    )
    counts = sorted(sizes.values())
    described = (
        f"{traffic.count:,} simulated events over {traffic.hours:.1f} h of event time "
        f"(`cartpulse simulate` seed 7, {SHOPPERS:,} shoppers); {len(counts):,} sessions of "
        f"{counts[0]} to {counts[-1]} events (median {statistics.median(counts):.0f}, "
        f"{sum(c <= 25 for c in counts) / len(counts):.1%} with at most 25); "
        f"{traffic.customers_seen:,} known customers, {traffic.returning:,} of them in more "
        "than one session; the audience's profiles and SMS and email consents"
    )
    return traffic, described


async def default_worker(settings: Settings, traffic: Traffic, work: Path) -> WorkerRun:
    """The detector and the journeys (the defaults), the audience read first."""
    env = worker_env(
        settings,
        work / "state",
        CARTPULSE_JOURNEYS_ENABLED="true",
        CARTPULSE_COUPON_SECRET=COUPON_SECRET,
    )
    await asyncio.to_thread(cartpulse, env, ROOT, "topics", "create")
    await produce_audience(settings, traffic.customers, traffic.consents)
    log = work / "worker.log"
    with worker_process(env, log, "--clock", "event", loglevel="info", cwd=ROOT) as worker:
        await while_running(worker, log, wait_for_audience(settings, PATIENCE))
    started = log.stat().st_size  # count the warnings of the timed worker only
    await asyncio.to_thread(cartpulse, env, ROOT, "import", "--quiet", str(traffic.events))
    with worker_process(env, log, "--clock", "event", loglevel="info", cwd=ROOT) as worker:
        marked = _cli_async(env, ROOT, "watermark", "end", "--timeout", str(PATIENCE))
        await while_running(worker, log, marked)
        await while_running(worker, log, wait_for_journeys(settings, PATIENCE))
    return await _measured(
        "default worker", settings, traffic.count, log, started, DETECTOR_OUT, JOURNEYS_OUT
    )


async def detector_only(settings: Settings, traffic: Traffic, work: Path) -> WorkerRun:
    """The detector alone: ``CARTPULSE_JOURNEYS_ENABLED=false``, no audience."""
    env = worker_env(settings, work / "state", CARTPULSE_JOURNEYS_ENABLED="false")
    await asyncio.to_thread(cartpulse, env, ROOT, "topics", "create")
    await asyncio.to_thread(cartpulse, env, ROOT, "import", "--quiet", str(traffic.events))
    log = work / "worker.log"
    with worker_process(env, log, "--clock", "event", loglevel="info", cwd=ROOT) as worker:
        marked = _cli_async(env, ROOT, "watermark", "end", "--timeout", str(PATIENCE))
        await while_running(worker, log, marked)
        await while_running(worker, log, _settled(settings, DETECTOR_OUT))
    return await _measured(
        "detector alone", settings, traffic.count, log, 0, DETECTOR_OUT, DETECTOR_OUT
    )


async def _settled(settings: Settings, topics: tuple[Topic, ...], quiet_s: float = 5.0) -> None:
    """Until nothing new lands on ``topics`` for ``quiet_s`` (the end-of-input flush done)."""
    names = [TopicCatalogue.of(settings).name(topic) for topic in topics]
    last, since = None, time.monotonic()
    while time.monotonic() - since < quiet_s:
        counts = await topic_counts(settings, names)
        if counts != last:
            last, since = counts, time.monotonic()
        await asyncio.sleep(0.5)


async def _measured(
    label: str,
    settings: Settings,
    events: int,
    log: Path,
    log_from: int,
    first_of: tuple[Topic, ...],
    last_of: tuple[Topic, ...],
) -> WorkerRun:
    name = TopicCatalogue.of(settings).name
    first = [r.timestamp for t in first_of async for r in read_records(settings, name(t))]
    last = [r.timestamp for t in last_of async for r in read_records(settings, name(t))]
    wanted = [Topic.ABANDONMENTS, Topic.SEND_SMS, Topic.SEND_EMAIL, Topic.DECISIONS]
    counts = await topic_counts(settings, [name(t) for t in wanted])
    with log.open("rb") as handle:
        handle.seek(log_from)
        warnings = handle.read().decode(errors="replace").count(BUFFER_FULL)
    return WorkerRun(
        label=label,
        events=events,
        seconds=(max(last) - min(first)) / 1000,
        abandonments=counts[name(Topic.ABANDONMENTS)],
        commands=counts[name(Topic.SEND_SMS)] + counts[name(Topic.SEND_EMAIL)],
        decisions=counts[name(Topic.DECISIONS)],
        buffer_full=warnings,
    )


@dataclass(frozen=True, slots=True)
class QuixRun:
    records: int
    closed: int
    seconds: float
    rate: float


def quix_job(settings: Settings, total: int, state: Path) -> QuixRun:
    """``bench/quix_sessions.py`` over ``settings``' clickstream and cart topics."""
    name = TopicCatalogue.of(settings).name
    done = subprocess.run(
        [
            sys.executable, str(ROOT / "bench" / "quix_sessions.py"),
            "--broker", settings.kafka_bootstrap_servers,
            "--topics", f"{name(Topic.CLICKSTREAM)},{name(Topic.CART)}",
            "--output", f"{settings.topic_prefix}quix-sessions",
            "--group", f"{settings.topic_prefix}quix",
            "--state", str(state),
            "--gap-ms", str(int(settings.gap.total_seconds() * 1000)),
            "--total", str(total),
        ],
        capture_output=True, text=True, timeout=PATIENCE, cwd=ROOT, check=False,
    )  # fmt: skip
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"the Quix Streams job failed:\n{done.stderr[-3000:]}")
    result = orjson.loads(done.stdout.strip().splitlines()[-1])
    return QuixRun(result["records"], result["closed"], result["seconds"], result["rate"])
