"""``make bench``: cartpulse's benchmarks on the real local stack; writes docs/BENCHMARKS.md.

Every figure stands next to a baseline measured in the same run on the same machine:

1. offline ``detect`` (the pure core, in-process): events/s and its ratio to plain orjson
   parsing of the same JSONL file (best of 3 each);
2. the detector worker through Kafka, RocksDB state: events/s per worker process, next to a
   plain aiokafka consumer reading the same topics (no Faust, no work) and a stock Faust agent
   that does nothing per message (the per-message path the batch path replaces);
3. live mode: wall-clock delay from a deadline passing to its abandonment being on the topic
   (p50/p99/max), next to the tick interval;
4. memory per session held (the process's resident memory, the offline file's sessions) and
   its size in the table;
5. the senders (``bench/senders.py``);
6. segments per SMS on the demo's traffic, with short links and without
   (``bench/sms_segments.py``, offline);
7. the journey engine's time per abandonment with conditions on and with a catalogue, next to
   one flow per trigger without conditions (``bench/journeys.py``, offline);
8. the journeys live against offline on a day of traffic, and the journeys' live delay of a
   step (``bench/journeys_live_offline.py``);
9. the whole worker as users run it (detector and journeys, RocksDB) over a day of event time,
   and the detector alone, next to a Quix Streams session-window job and the plain consumer
   on the same topics (``bench/whole_worker.py``, ``bench/quix_sessions.py``).

10. failover: two workers share open sessions, one is killed, and the seconds until the
    survivor serves every partition again, with and without standby replicas
    (``bench/failover.py``);
11. live under load: the live detection delay with the journeys on while simulated traffic
    streams in at 5,000 events/s (``bench/live_load.py``).

``python bench/run.py --whole-worker`` runs only 9 and prints its section; ``python bench/run.py
--sections whole-worker,live-load,failover`` runs the ones named and writes each section into
docs/BENCHMARKS.md in place of the last run's, saying so (``--failover`` is ``--sections
failover``; ``--failover-sizes`` chooses the numbers of open sessions, 100k and 1M by default).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402

from bench.whole_worker import (  # noqa: E402
    QuixRun,
    WorkerRun,
    default_worker,
    detector_only,
    quix_job,
    traffic_of,
)
from streams.agents.worker_process import worker_env, worker_process  # noqa: E402
from streams.contract.event_parse import read_record  # noqa: E402
from streams.core.detection import Detector, DetectorConfig  # noqa: E402
from streams.offline.detect import DetectSummary, detect_file  # noqa: E402
from streams.offline.simulate import SimulationConfig, simulate  # noqa: E402
from streams.runtime.gctune import tune_gc  # noqa: E402
from streams.runtime.kafka import delete_topics, topic_counts  # noqa: E402
from streams.runtime.settings import Settings, load_settings  # noqa: E402

OUT = ROOT / "docs" / "BENCHMARKS.md"
NOTES = """\
Where the time goes is profiled separately, not by this run: see docs/architecture.md, "Where
offline `detect`'s time goes" and "Where the worker's time goes", each with its date and the
file it was measured on. The offline file is shorter in event time than one 30-minute gap, so
every period closes in the end-of-input flush."""
WHOLE_NOTES = """\
The default worker is `cartpulse worker --clock event` with the default settings (the detector
and the journeys, RocksDB, 8 partitions, the shipped policy), run as a replay runs it
(tests/support/live_offline.py): the audience's profiles and consents read first by a worker
that then stops, the events imported, a worker reading them and `cartpulse watermark end` once
they are in Kafka; the detector alone is the same with `CARTPULSE_JOURNEYS_ENABLED=false` on a
second copy of the same file under another topic prefix. A worker's time runs from the first
record it wrote (an order or an abandonment) to the last (a command or decision with the
journeys, an order or abandonment without); abandonments/s and commands/s are the counts on the
output topics after the run over that time. The Quix Streams job (`bench/quix_sessions.py`)
reads the default run's clickstream and cart topics (event time from `occurred_at`, the topics
concatenated), keys by session, a `session_window` with the same 30-minute gap closing on the
partition's watermark, `count()` per closed session produced to a topic; its time runs from its
first record processed to its last. The plain aiokafka consumer reads the same topics and does
nothing with them. The workers and the Quix job run one after another, not at the same time.
The count of `producer buffer full` warnings (Faust's producer) is of the timed workers' logs."""
WORKER_EVENTS = int(os.environ.get("BENCH_WORKER_EVENTS", "300000"))
OFFLINE_EVENTS = int(os.environ.get("BENCH_OFFLINE_EVENTS", "200000"))
WHOLE_EVENTS = int(os.environ.get("BENCH_WHOLE_EVENTS", "300000"))


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)  # noqa: T201


def write_traffic(path: Path, events: int, rate: float) -> None:
    config = SimulationConfig(events=events, rate=rate, start_ms=1_767_225_600_000, seed=7)
    with path.open("wb") as out:
        for record in simulate(config):
            out.write(orjson.dumps(record) + b"\n")


def best_of(runs: int, fn: object) -> float:
    assert callable(fn)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def offline_bench(path: Path, events: int) -> list[str]:
    def orjson_only() -> None:
        with path.open("rb") as handle:
            for line in handle:
                orjson.loads(line)

    def detect_only() -> None:
        summary = DetectSummary()
        detect_file(path, "jsonl", DetectorConfig(), io.BytesIO(), summary, _ignore, flush=True)
        if summary.events != events or summary.invalid:
            raise RuntimeError(f"detect read {summary.events} of {events} events")

    base = best_of(3, orjson_only)
    core = best_of(3, detect_only)
    return [
        f"| offline `detect` ({events:,} simulated events, JSONL) | {events / core:,.0f} events/s "
        f"| plain orjson parsing of the same file: {events / base:,.0f} events/s "
        f"| **{core / base:.1f}x** orjson (target ≤ 3x) |"
    ]


def _ignore(*_: object) -> None:
    """Rejects go nowhere: the bench file has none (``detect_only`` checks)."""


def memory_bench(path: Path, at_least: int = 1_000_000) -> list[str]:
    """Resident memory the native core's sessions add to the process, per session, and their
    saved state's size: the offline file's sessions, then at least ``at_least`` sessions.

    The second detector takes the file's events each as several sessions (the session id
    prefixed ``c<k>-``), in the file's order, so every session is shaped like the simulator's and
    stays open (the file is shorter in event time than a gap); events are read and dropped as
    they go, so the growth is the detector's. The first detector and its events are kept
    meanwhile, so the second cannot reuse memory they would free."""
    lines = path.read_bytes().splitlines()
    events = [read_record(line) for line in lines]
    detector = Detector(DetectorConfig())
    before = _resident_bytes()
    for event in events:
        detector.on_event(event)
    after = _resident_bytes()
    rows = [_memory_row(detector, after - before)]
    copies = -(-at_least // max(1, len(detector)))
    key = b'"session_id":"'
    prefixes = [key + b"c%d-" % k for k in range(copies)]
    many = Detector(DetectorConfig())
    before = _resident_bytes()
    for line in lines:
        for prefix in prefixes:
            many.on_event(read_record(line.replace(key, prefix, 1)))
    after = _resident_bytes()
    assert len(many) == copies * len(detector), "each copy is a session of its own"
    rows.append(_memory_row(many, after - before))
    return rows


MEMORY_TARGET_KIB = 1.5  # resident memory per open session at 1M: 5M sessions in 8 GiB


def _memory_row(detector: Detector, grown: int) -> str:
    sessions = len(detector)
    stored = sum(len(detector.state(sid) or b"") for sid in detector.session_ids())
    per_session = grown / max(1, sessions) / 1024
    target = ""
    if sessions >= 1_000_000:  # the target is set at a million sessions
        met = "met" if per_session <= MEMORY_TARGET_KIB else "not met"
        target = f" (target ≤ {MEMORY_TARGET_KIB} KiB: {met})"
    return (
        f"| memory per session held ({sessions:,} sessions, {detector.open_sessions():,} open) "
        f"| {per_session:.2f} KiB of the worker's resident memory{target} "
        f"| {stored / max(1, sessions) / 1024:.2f} KiB per session in the table (JSON) "
        "| growth of the process's RSS while the core takes the events |"
    )


def _resident_bytes() -> int:
    """This process's resident set size (Linux: the second field of /proc/self/statm)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


@contextmanager
def worker(settings: Settings, state: Path, web_port: int, *args: str) -> Iterator[None]:
    env = worker_env(settings, state, CARTPULSE_WEB_PORT=str(web_port))
    with worker_process(env, state / "worker.log", *args, cwd=ROOT):
        yield


async def events_taken(port: int) -> float:
    """The worker's own count of events taken (from /metrics)."""
    import aiohttp

    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                f"http://127.0.0.1:{port}/metrics", timeout=aiohttp.ClientTimeout(total=2)
            ) as response,
        ):
            text = await response.text()
    except (aiohttp.ClientError, TimeoutError):
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("cartpulse_detector_events_total{")
    )


def cli(settings: Settings, state: Path, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        check=True,
        cwd=ROOT,
        env=worker_env(settings, state),
        stdout=subprocess.DEVNULL,
    )


async def consumer_baseline(settings: Settings, total: int) -> float:
    topics = [f"{settings.topic_prefix}clickstream", f"{settings.topic_prefix}cart"]
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=f"{settings.topic_prefix}baseline",
        auto_offset_reset="earliest",
        max_poll_records=20_000,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        seen = 0
        started = None
        while seen < total:
            batch = await consumer.getmany(timeout_ms=1000)
            if batch and started is None:
                started = time.perf_counter()
            seen += sum(len(records) for records in batch.values())
        assert started is not None
        return total / (time.perf_counter() - started)
    finally:
        await consumer.stop()


FAUST_BASELINE = """
import os, sys, time, faust
app = faust.App(os.environ["APP"], broker="kafka://" + os.environ["BROKER"], store="memory://",
                web_enabled=False, broker_max_poll_records=20000,
                consumer_auto_offset_reset="earliest")
topic = app.topic(*os.environ["TOPICS"].split(","), value_serializer="raw", key_serializer="raw")
total, state = int(os.environ["TOTAL"]), {"n": 0, "t": None}
@app.agent(topic)
async def nothing(stream):
    async for _ in stream:
        if state["t"] is None:
            state["t"] = time.perf_counter()
        state["n"] += 1
        if state["n"] >= total:
            sys.stdout.write(f"{total / (time.perf_counter() - state['t']):.0f}\\n")
            sys.stdout.flush()
            os._exit(0)
app.main()
"""


def faust_baseline(settings: Settings, total: int, state: Path) -> float:
    script = state / "faust_baseline.py"
    script.write_text(FAUST_BASELINE)
    env = {
        **os.environ,
        "APP": f"{settings.topic_prefix}faust-baseline",
        "BROKER": settings.kafka_bootstrap_servers,
        "TOTAL": str(total),
        "TOPICS": f"{settings.topic_prefix}clickstream,{settings.topic_prefix}cart",
    }
    result = subprocess.run(
        [sys.executable, str(script), "worker", "-l", "warn"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=state,
    )
    # Faust's worker routes stdout into its log (a "[WARNING] 12345" line on stderr).
    numbers = re.findall(r"(?:^|\] )(\d+)\s*$", result.stdout + result.stderr, re.MULTILINE)
    if not numbers:
        raise RuntimeError(f"the stock Faust baseline printed no rate:\n{result.stderr[-2000:]}")
    return float(numbers[-1])


async def worker_bench(path: Path, events: int, state: Path) -> list[str]:
    settings = Settings(topic_prefix=f"bench{uuid.uuid4().hex[:8]}.", topic_partitions=4)
    cli(settings, state, "topics", "create")
    cli(settings, state, "import", "--quiet", str(path))
    port = 16066
    with worker(settings, state / "worker", port, "--clock", "event"):
        started = finished = None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            taken = await events_taken(port)
            now = time.perf_counter()
            if taken > 0 and started is None:
                started = (now, taken)
            if taken >= events:
                finished = now
                break
            await asyncio.sleep(0.1)
    if started is None or finished is None:
        raise RuntimeError("the worker did not take every event within 10 minutes")
    rate = (events - started[1]) / (finished - started[0])
    log(f"worker: {rate:,.0f} events/s")
    plain = await consumer_baseline(settings, events)
    log(f"plain aiokafka consumer: {plain:,.0f} records/s")
    stock = faust_baseline(settings, events, state)
    log(f"stock Faust agent: {stock:,.0f} records/s")
    await delete_topics(settings, settings.topic_prefix)
    return [
        f"| detector worker, event mode, RocksDB, 4 partitions ({events:,} events) "
        f"| **{rate:,.0f} events/s** (target ≥ 20,000) | plain aiokafka consumer, same topics: "
        f"{plain:,.0f} records/s; stock Faust agent doing nothing: {stock:,.0f} records/s | "
        f"one process |"
    ]


async def live_bench(state: Path, sessions: int = 200) -> list[str]:
    settings = Settings(topic_prefix=f"bench{uuid.uuid4().hex[:8]}.", topic_partitions=4)
    cli(settings, state, "topics", "create")
    gap_s = 5
    with worker(settings, state / "live", 0, "--clock", "live", "--gap", f"{gap_s}s"):
        await asyncio.sleep(12)  # join, become leader, start ticking
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
        await producer.start()
        try:
            for i in range(sessions):  # one silent shopper every 50 ms for 10 s
                now_ms = int(time.time() * 1000)
                event = {
                    "event_id": f"live-{i}",
                    "type": "cart_item_added",
                    "occurred_at": now_ms,
                    "session_id": f"live-{i}",
                    "product": {"id": "sku-1", "price": "10.00"},
                }
                await producer.send(
                    f"{settings.topic_prefix}cart", orjson.dumps(event), key=f"live-{i}".encode()
                )
                await asyncio.sleep(0.05)
            await producer.flush()
        finally:
            await producer.stop()
        topic = f"{settings.topic_prefix}abandonments"
        deadline = time.monotonic() + 60
        while (await topic_counts(settings, [topic]))[topic] < sessions:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            auto_offset_reset="earliest",
            group_id=None,
        )
        await consumer.start()
        delays = []
        try:
            while len(delays) < sessions:
                batch = await consumer.getmany(timeout_ms=2000)
                if not batch:
                    break
                for records in batch.values():
                    for record in records:
                        abandonment = orjson.loads(record.value)
                        last = _epoch_ms(abandonment["last_activity_at"])
                        delays.append(record.timestamp / 1000 - (last / 1000 + gap_s))
        finally:
            await consumer.stop()
    await delete_topics(settings, settings.topic_prefix)
    delays.sort()
    p = lambda q: delays[min(len(delays) - 1, int(q * len(delays)))]  # noqa: E731
    return [
        f"| live detection delay, deadline → abandonment on the topic ({len(delays)} of "
        f"{sessions} sessions) | p50 {p(0.5):.2f} s, **p99 {p(0.99):.2f} s**, max "
        f"{delays[-1]:.2f} s (target p99 ≤ 2 s) | tick interval 0.5 s, state flush 1 s | |"
    ]


async def whole_worker_bench(state: Path, events: int = WHOLE_EVENTS) -> str:
    """The worker with its defaults and the detector alone over a day of traffic, the Quix
    Streams job and the plain consumer on the default run's input topics; a markdown
    section."""
    traffic, described = await asyncio.to_thread(traffic_of, state / "whole", events)
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    full_settings = load_settings(topic_prefix=f"{prefix}w.")
    alone_settings = load_settings(topic_prefix=f"{prefix}d.")
    try:
        log(f"whole worker: {described}")
        log("whole worker: the detector and the journeys")
        full = await default_worker(full_settings, traffic, state / "whole" / "default")
        log(f"whole worker: {full.rate:,.0f} events/s")
        log("whole worker: the detector alone")
        alone = await detector_only(alone_settings, traffic, state / "whole" / "detector")
        log(f"detector alone: {alone.rate:,.0f} events/s")
        log("whole worker: the plain aiokafka consumer")
        plain = await consumer_baseline(full_settings, traffic.count)
        log(f"plain aiokafka consumer: {plain:,.0f} records/s")
        log("whole worker: the Quix Streams job")
        quix = await asyncio.to_thread(
            quix_job, full_settings, traffic.count, state / "whole" / "quix"
        )
        log(f"Quix Streams: {quix.rate:,.0f} records/s, {quix.closed:,} sessions closed")
    finally:
        for settings in (full_settings, alone_settings):
            await delete_topics(settings, settings.topic_prefix)
        # Quix names its changelogs after the consumer group: changelog__<group>--...
        await delete_topics(full_settings, f"changelog__{full_settings.topic_prefix}quix")
    return whole_worker_section(described, full, alone, quix, plain)


def whole_worker_section(
    described: str, full: WorkerRun, alone: WorkerRun, quix: QuixRun, plain: float
) -> str:
    def worker_row(run: WorkerRun, target: float) -> str:
        ratio = run.rate / quix.rate
        verdict = "met" if ratio >= target else "**not met**"
        return (
            f"| {run.label} | **{run.rate:,.0f}** | {run.per_s(run.abandonments):,.1f} "
            f"({run.abandonments:,}) | {run.per_s(run.commands):,.1f} ({run.commands:,}) "
            f"| {run.decisions:,} | {run.seconds:.1f} | {run.buffer_full} "
            f"| **{ratio:.2f}x** (target ≥ {target:.0f}x: {verdict}) |"
        )

    rows = [
        worker_row(full, 3),
        worker_row(alone, 5),
        f"| Quix Streams {quix_version()}: session window, same gap, same topics | "
        f"{quix.rate:,.0f} | {quix.closed / quix.seconds:,.1f} ({quix.closed:,} sessions "
        f"closed) | - | - | {quix.seconds:.1f} | - | 1.00x |",
        f"| plain aiokafka consumer, same topics, no work | {plain:,.0f} | - | - | - | - | - "
        f"| {plain / quix.rate:.2f}x |",
    ]
    warnings = full.buffer_full + alone.buffer_full
    return (
        f"{described}.\n\n"
        "| run | events/s | abandonments/s (count) | commands/s (count) | decisions "
        "| seconds | `producer buffer full` warnings | ÷ Quix Streams |\n"
        "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        f"Targets (issue 17): the default worker ≥ 3x the Quix Streams job "
        f"({'met' if full.rate >= 3 * quix.rate else 'not met'}: {full.rate / quix.rate:.2f}x), "
        f"the detector alone ≥ 5x ({'met' if alone.rate >= 5 * quix.rate else 'not met'}: "
        f"{alone.rate / quix.rate:.2f}x), no `producer buffer full` warnings "
        f"({'met' if warnings == 0 else 'not met'}: {warnings} in the workers' logs)."
    )


def quix_version() -> str:
    from importlib.metadata import version

    return version("quixstreams")


def _epoch_ms(text: str) -> int:
    from streams.contract.events import parse_time

    return parse_time(text)


def section_of(script: str, name: str, timeout: float, *args: str) -> str:
    """The markdown section ``bench/<script> ARGS`` prints, or the end of its stderr when it
    fails."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )
    if result.returncode != 0:
        return f"{name} benchmark failed:\n\n```\n{result.stderr[-2000:]}\n```"
    return result.stdout.strip()


def sms_segments_bench() -> str:
    return section_of("sms_segments.py", "SMS segments", timeout=300)


def journeys_bench() -> str:
    return section_of("journeys.py", "journeys", timeout=600)


def journeys_live_offline_bench() -> str:
    return section_of("journeys_live_offline.py", "journeys live/offline", 900, "--live-delay")


def collect_bench() -> str:
    return section_of("collect.py", "collector", timeout=120)


FAILOVER_SIZES = "100000,1000000"
FAILOVER = "## Failover"


def failover_bench(sizes: str = FAILOVER_SIZES) -> str:
    return section_of("failover.py", "failover", 7200, "--sizes", sizes)


def with_section(document: str, heading: str, section: str) -> str:
    """``document`` with the section under ``heading`` replaced by ``section`` (put before the
    closing line on the whole run's time when it has none)."""
    body = f"{heading}\n\n{section}\n\n"
    closing = "\n(the whole run took"
    start = document.find(f"\n{heading}\n")
    if start >= 0:
        ends = [
            i for i in (document.find("\n## ", start + 1), document.find(closing, start)) if i >= 0
        ]
        end = min(ends) if ends else len(document)
    else:
        end = document.rfind(closing)
        end = start = len(document) if end < 0 else end
    return document[: start + 1] + body + document[end + 1 :]


LIVE_LOAD = "## Live, under load"
WHOLE = "## The whole worker"


def live_load_bench() -> str:
    return section_of("live_load.py", "live under load", timeout=900)


async def sections_only(names: list[str], sizes: str) -> None:
    """``--sections``: only the named benchmarks, each section written into BENCHMARKS.md in
    place of the last run's, with a line saying it comes from a run of its own."""
    when = time.strftime("%Y-%m-%d", time.gmtime())
    own = f"(This section is from a run of its own on {when}: `bench/run.py --sections {{}}`.)"
    document = OUT.read_text(encoding="utf-8")
    for name in names:
        log(name)
        if name == "whole-worker":
            tune_gc()
            with tempfile.TemporaryDirectory(prefix="cartpulse-bench-") as tmp:
                whole = await whole_worker_bench(Path(tmp))
            heading, section = WHOLE, f"{whole}\n\n{WHOLE_NOTES}"
        elif name == "live-load":
            heading, section = LIVE_LOAD, live_load_bench()
        elif name == "failover":
            heading, section = FAILOVER, failover_bench(sizes)
        else:
            raise SystemExit(f"no benchmark section {name!r}: whole-worker, live-load, failover")
        document = with_section(document, heading, f"{section}\n\n{own.format(name)}")
        OUT.write_text(document, encoding="utf-8")
        log(f"wrote the {name} section of {OUT}")


def senders_bench() -> list[str]:
    return [section_of("senders.py", "senders", timeout=900)]


async def whole_worker_only() -> None:
    """``--whole-worker``: only the whole worker's benchmark; its section on stdout."""
    tune_gc()
    with tempfile.TemporaryDirectory(prefix="cartpulse-bench-") as tmp:
        section = await whole_worker_bench(Path(tmp))
    print(section)  # noqa: T201


async def main() -> None:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cartpulse-bench-") as tmp:
        state = Path(tmp)
        offline_file = state / "offline.jsonl"
        write_traffic(offline_file, OFFLINE_EVENTS, rate=200.0)
        log("offline detect")
        tune_gc()  # as `cartpulse detect` and the worker do
        # Memory first: resident memory freed by the timed runs would hide the growth.
        memory = memory_bench(offline_file)
        rows = offline_bench(offline_file, OFFLINE_EVENTS) + memory
        worker_file = state / "worker.jsonl"
        write_traffic(worker_file, WORKER_EVENTS, rate=200.0)
        log("worker through Kafka")
        rows += await worker_bench(worker_file, WORKER_EVENTS, state)
        log("the whole worker over a day of traffic, and its peers")
        whole = await whole_worker_bench(state)
        log("live detection delay")
        rows += await live_bench(state)
        log("live detection delay under load, the journeys on")
        live_load = live_load_bench()
        log("senders")
        senders = senders_bench()
        log("SMS segments")
        segments = sms_segments_bench()
        log("journeys")
        journeys = journeys_bench()
        log("journeys live against offline")
        live_offline = journeys_live_offline_bench()
        log("collector")
        collect = collect_bench()
        log("failover")
        failover = failover_bench(FAILOVER_SIZES)
    cpu = platform.processor() or platform.machine()
    OUT.write_text(
        "# Benchmarks\n\n"
        f"Written by `make bench` on {time.strftime('%Y-%m-%d', time.gmtime())}: "
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        "Kafka 4.1.1 and Redis on 127.0.0.1 (the local stack). Each figure stands beside a "
        "baseline from the same run. Simulated traffic: `cartpulse simulate` (seed 7).\n\n"
        "## Detector\n\n"
        "| benchmark | result | baseline (same run) | notes |\n|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n\n"
        + NOTES
        + f"\n\n{WHOLE}\n\n"
        + whole
        + "\n\n"
        + WHOLE_NOTES
        + f"\n\n{LIVE_LOAD}\n\n"
        + live_load
        + "\n\n## Senders\n\n"
        + "\n".join(senders)
        + "\n\n## SMS segments\n\n"
        + segments
        + "\n\n## Journeys\n\n"
        + journeys
        + "\n\n## Journeys: live equals offline\n\n"
        + live_offline
        + "\n\n## Collector\n\n"
        + collect
        + f"\n\n{FAILOVER}\n\n"
        + failover
        + f"\n\n(the whole run took {time.monotonic() - started:.0f} s)\n"
    )
    log(f"wrote {OUT}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--whole-worker", action="store_true", help="only the whole worker; print its section"
    )
    parser.add_argument(
        "--failover",
        action="store_true",
        help="only the failover benchmark; write its section into docs/BENCHMARKS.md",
    )
    parser.add_argument(
        "--sections",
        help="only these benchmarks, comma-separated (whole-worker, live-load, failover); "
        "write their sections into docs/BENCHMARKS.md",
    )
    parser.add_argument(
        "--failover-sizes",
        default=FAILOVER_SIZES,
        help=f"open sessions per failover run, comma-separated (default {FAILOVER_SIZES})",
    )
    arguments = parser.parse_args()
    if arguments.failover or arguments.sections:
        names = arguments.sections.split(",") if arguments.sections else ["failover"]
        asyncio.run(sections_only(names, arguments.failover_sizes))
    else:
        asyncio.run(whole_worker_only() if arguments.whole_worker else main())
