"""Failover: how long a killed worker's partitions take to be served again, with and without
standby replicas of the sessions table.

For each size and standby count: two ``cartpulse worker --clock event`` processes (the detector
alone, RocksDB, 8 partitions) in one group, each with its own state directory. ``sessions``
open sessions are produced straight to the input topics (aiokafka, in batches: the importer's
pacing would take too long at 1M): a ``product_viewed`` each and, for every other session, a
``cart_item_added``, all within ten minutes of event time, so none closes (the gap is 30
minutes). Once the group has committed every input record, the changelog has settled and the
survivor's standby copies have caught up with it (``cartpulse_table_standby_lag_records``: a
failover in steady state, not while the standbys still read the initial load), the second
worker is sent SIGKILL and one probe ``order_completed`` goes to every partition. Two times
from the kill:

- served: every partition's probe order is on ``orders`` (the detector forwards an order as
  soon as it takes it, and it takes a partition's first record only after loading that
  partition's sessions from the table);
- held: the survivor's ``cartpulse_detector_open_sessions`` counts every loaded session.

Both include the group noticing the death (``CARTPULSE_SESSION_TIMEOUT``, 10 s). The survivor's
log says, per partition loaded after the kill, how many sessions it restored, how many table
entries it read for them and how long that took, and which partitions it kept through the
rebalance (its own, given back: not loaded again).

``python bench/failover.py --sizes 10000 --standbys 0,1`` prints the markdown section.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import orjson  # noqa: E402
from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: E402

from streams.agents.worker_process import worker_env, worker_process  # noqa: E402
from streams.contract.topics import Topic, TopicCatalogue  # noqa: E402
from streams.runtime.kafka import (  # noqa: E402
    delete_topics,
    group_lag,
    partition_of,
    producer,
    topic_counts,
    topic_offsets,
)
from streams.runtime.settings import Settings, load_settings  # noqa: E402

PARTITIONS = 8
START_MS = 1_781_100_000_000  # 2026-06-10T14:00:00Z
SPREAD_MS = 10 * 60_000  # the sessions' events span ten minutes: within one 30-minute gap
CHUNK = 20_000
PATIENCE = 1800.0
HEARTBEATS_PER_S = 4 * PARTITIONS  # a watermark record per partition and flush, and slack
STANDBY_LAG = "cartpulse_table_standby_lag_records"
PROBE_PATIENCE_S = 240.0  # a partition not served by then is reported as never served
KEPT = re.compile(r"partition (\d+): (\d+) sessions kept through the rebalance")
RESTORED = re.compile(
    r"partition (\d+): (\d+) sessions restored from (\d+) table entries read in ([\d.]+) s"
)


@dataclass(frozen=True, slots=True)
class Restore:
    partition: int
    sessions: int
    read: int
    seconds: float
    ended: float  # when the log says it was done (epoch seconds)


@dataclass(frozen=True, slots=True)
class Failover:
    """One measured failover."""

    sessions: int
    standbys: int
    load_s: float  # producing the sessions until the group and the changelog are caught up
    served_s: float | None  # kill → every partition's probe answered (None: not all were)
    answered: dict[int, float]  # partition → seconds from the kill to its probe's answer
    held_s: float | None  # kill → the survivor's gauge holds every session (None: never)
    held: int  # the most sessions the survivor's gauge counted
    restores: tuple[Restore, ...]  # the survivor's partition loads after the kill
    kept: int  # the survivor's partitions kept through the rebalance (not loaded again)
    standby_lag: int  # changelog records the survivor's standbys had yet to apply at the kill
    survivor_rss_before_mb: float  # the survivor's resident memory just before the kill
    survivor_rss_mb: float  # and once every partition was served (or given up on)


def log(message: str) -> None:
    print(f"[failover] {message}", file=sys.stderr, flush=True)  # noqa: T201


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def product(n: int) -> dict[str, str]:
    sku = f"sku-{n % 500}"
    return {
        "id": sku,
        "name": f"Product {n % 500}",
        "price": "19.90",
        "currency": "USD",
        "url": f"https://shop.example/p/{sku}",
    }


def session_events(i: int, sessions: int) -> list[tuple[Topic, bytes, bytes]]:
    """A session's one or two events (topic, key, value): a view, and every other one a cart."""
    sid = f"s-{i}"
    at = START_MS + i * SPREAD_MS // sessions
    view = {
        "event_id": f"e-{i}-v",
        "type": "product_viewed",
        "occurred_at": iso(at),
        "session_id": sid,
        "store_id": "bench",
        "customer_id": f"c-{i}",
        "product": product(i),
    }
    events = [(Topic.CLICKSTREAM, sid.encode(), orjson.dumps(view))]
    if i % 2 == 0:
        cart = view | {
            "event_id": f"e-{i}-c",
            "type": "cart_item_added",
            "occurred_at": iso(at + 1000),
            "quantity": 1,
            "cart": {"id": f"cart-{sid}", "url": f"https://shop.example/cart/{sid}"},
        }
        events.append((Topic.CART, sid.encode(), orjson.dumps(cart)))
    return events


def probe_keys() -> dict[int, bytes]:
    """A session id for every partition, each landing on it (the default partitioner)."""
    keys: dict[int, bytes] = {}
    n = 0
    while len(keys) < PARTITIONS:
        key = f"probe-{n}".encode()
        keys.setdefault(partition_of(key, PARTITIONS), key)
        n += 1
    return keys


def probe(key: bytes) -> bytes:
    sid = key.decode()
    return orjson.dumps(
        {
            "event_id": f"{sid}-order",
            "type": "order_completed",
            "occurred_at": iso(START_MS + SPREAD_MS + 2000),
            "session_id": sid,
            "store_id": "bench",
            "order": {"id": f"o-{sid}", "value": "19.90", "currency": "USD"},
        }
    )


async def load(settings: Settings, sessions: int) -> None:
    """Produce every session's events, ``CHUNK`` sessions awaited at a time."""
    name = TopicCatalogue.of(settings).name
    out = producer(settings, linger_ms=20, max_batch_size=1024 * 1024)
    await out.start()
    try:
        for first in range(0, sessions, CHUNK):
            sent = [
                await out.send(name(topic), value, key=key)
                for i in range(first, min(first + CHUNK, sessions))
                for topic, key, value in session_events(i, sessions)
            ]
            await asyncio.gather(*sent)
    finally:
        await out.stop()


async def caught_up(settings: Settings, changelog: str, survivor_port: int) -> int:
    """Until the group has committed every input, the changelog grows by no more than the
    partitions' watermark records (each flush writes one), and the survivor's standby copies
    are no further behind it than that; returns how far behind they were."""
    name = TopicCatalogue.of(settings).name
    inputs = [name(Topic.CLICKSTREAM), name(Topic.CART)]
    deadline = time.monotonic() + PATIENCE
    while await group_lag(settings, settings.worker_group, inputs) > 0:
        if time.monotonic() > deadline:
            raise TimeoutError("the workers did not catch up")
        await asyncio.sleep(1.0)
    last = (await topic_counts(settings, [changelog]))[changelog]
    while True:
        await asyncio.sleep(1.0)
        now = (await topic_counts(settings, [changelog]))[changelog]
        if now - last <= HEARTBEATS_PER_S:
            break
        last = now
    while (lag := await metric(survivor_port, STANDBY_LAG)) is None or lag > HEARTBEATS_PER_S:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the standbys did not catch up ({lag} records behind)")
        await asyncio.sleep(1.0)
    return int(lag)


async def fetch(port: int, path: str) -> tuple[int, str] | None:
    """The status and body of ``path`` on the worker's web port, None while unreachable."""
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                f"http://127.0.0.1:{port}{path}", timeout=aiohttp.ClientTimeout(total=2)
            ) as response,
        ):
            return response.status, await response.text()
    except (aiohttp.ClientError, TimeoutError):
        return None


async def metric(port: int, name: str) -> float | None:
    """A metric's value on the worker's /metrics (summed over labels), None while unreachable."""
    got = await fetch(port, "/metrics")
    if got is None:
        return None
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in got[1].splitlines()
        if line.startswith((f"{name} ", f"{name}{{"))
    ]
    return sum(values) if values else None


async def ready(port: int) -> bool:
    got = await fetch(port, "/readyz")
    return got is not None and got[0] == 200


async def all_ready(ports: tuple[int, ...]) -> None:
    deadline = time.monotonic() + 180
    while not all([await ready(port) for port in ports]):
        if time.monotonic() > deadline:
            raise TimeoutError("the workers did not become ready")
        await asyncio.sleep(0.5)


async def probes_served(
    settings: Settings, since: dict[TopicPartition, int]
) -> tuple[float | None, dict[int, float]]:
    """Read ``orders`` from ``since`` until every partition's probe order is there, or for
    ``PROBE_PATIENCE_S``: the time the last one was written (the worker's producer stamps
    it; None when one never came) and each answered partition's time."""
    keys = {key: partition for partition, key in probe_keys().items()}
    answered: dict[int, float] = {}
    reader = AIOKafkaConsumer(**settings.kafka_client_options(), enable_auto_commit=False)
    await reader.start()
    try:
        reader.assign(list(since))
        for tp, offset in since.items():
            reader.seek(tp, offset)
        deadline = time.monotonic() + PROBE_PATIENCE_S
        while len(answered) < len(keys) and time.monotonic() < deadline:
            batch = await reader.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    key = str(orjson.loads(record.value).get("session_id", "")).encode()
                    if key in keys:
                        answered.setdefault(keys[key], record.timestamp / 1000)
    finally:
        await reader.stop()
    last = max(answered.values()) if len(answered) == len(keys) else None
    return last, answered


async def send_probes(settings: Settings) -> None:
    name = TopicCatalogue.of(settings).name
    out = producer(settings)
    await out.start()
    try:
        sent = [await out.send(name(Topic.CART), probe(k), key=k) for k in probe_keys().values()]
        await asyncio.gather(*sent)
    finally:
        await out.stop()


async def sessions_held(port: int, sessions: int) -> tuple[float | None, int]:
    """Until the survivor's open-sessions gauge counts every session: the wall time then and
    the count; after ``PROBE_PATIENCE_S`` without, None and the most it counted (state lost)."""
    deadline = time.monotonic() + PROBE_PATIENCE_S
    most = 0
    while time.monotonic() < deadline:
        most = max(most, int(await metric(port, "cartpulse_detector_open_sessions") or 0))
        if most >= sessions:
            return time.time(), most
        await asyncio.sleep(0.2)
    return None, most


def logged_after(
    log_file: Path, kill: float, pattern: re.Pattern[str]
) -> list[tuple[float, tuple[str, ...]]]:
    """When, and the groups of, each of the log's messages that ``pattern`` finds, from
    ``kill`` on."""
    found = []
    for line in log_file.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        entry = orjson.loads(line)
        at = datetime.fromisoformat(entry["at"]).timestamp()
        matched = pattern.search(entry.get("message", ""))
        if matched and at >= kill:
            found.append((at, matched.groups()))
    return found


def restores_after(log_file: Path, kill: float) -> tuple[Restore, ...]:
    return tuple(
        Restore(int(p), int(n), int(read), float(seconds), at)
        for at, (p, n, read, seconds) in logged_after(log_file, kill, RESTORED)
    )


def kept_after(log_file: Path, kill: float) -> list[tuple[str, ...]]:
    return [groups for _, groups in logged_after(log_file, kill, KEPT)]


def worker(
    env: dict[str, str], log_file: Path
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    return worker_process(env, log_file, "--clock", "event", loglevel="info", cwd=ROOT)


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def failover(work: Path, sessions: int, standbys: int) -> Failover:
    prefix = f"bench-failover-{uuid.uuid4().hex[:8]}-"
    settings = load_settings(topic_prefix=prefix, topic_partitions=PARTITIONS)
    name = TopicCatalogue.of(settings).name
    changelog = f"{settings.worker_group}-sessions-changelog"
    ports = (free_port(), free_port())
    envs = [
        worker_env(
            settings,
            work / f"state-{n}",
            CARTPULSE_WEB_PORT=str(port),
            CARTPULSE_TABLE_STANDBY_REPLICAS=str(standbys),
        )
        for n, port in enumerate(ports)
    ]
    create = [sys.executable, "-m", "streams.cli", "topics", "create"]
    await asyncio.to_thread(
        subprocess.run, create, env=envs[0], cwd=ROOT, check=True, stdout=subprocess.DEVNULL
    )
    logs = [work / f"worker-{n}.log" for n in range(2)]
    try:
        with contextlib.ExitStack() as workers:
            # one after the other: two workers starting at once race to create the changelog
            survivor = workers.enter_context(worker(envs[0], logs[0]))
            await all_ready(ports[:1])
            victim = workers.enter_context(worker(envs[1], logs[1]))
            await all_ready(ports)
            started = time.monotonic()
            await load(settings, sessions)
            standby_lag = await caught_up(settings, changelog, ports[0])
            load_s = time.monotonic() - started
            log(f"{sessions:,} sessions loaded and caught up in {load_s:.1f} s")
            _, since = await topic_offsets(settings, [name(Topic.ORDERS)])
            rss_before = resident_mb(survivor.pid)
            kill = time.time()
            victim.send_signal(signal.SIGKILL)
            log(f"worker {victim.pid} killed at {iso(int(kill * 1000))}")
            victim.wait()
            await send_probes(settings)
            (served, answered), (held_at, held) = await asyncio.gather(
                probes_served(settings, since), sessions_held(ports[0], sessions)
            )
            rss = resident_mb(survivor.pid)
        restores = restores_after(logs[0], kill)
        kept = len(kept_after(logs[0], kill))
        return Failover(
            sessions=sessions,
            standbys=standbys,
            load_s=load_s,
            served_s=None if served is None else served - kill,
            answered={p: at - kill for p, at in answered.items()},
            held_s=None if held_at is None else held_at - kill,
            held=held,
            restores=restores,
            survivor_rss_before_mb=rss_before,
            survivor_rss_mb=rss,
            kept=kept,
            standby_lag=standby_lag,
        )
    finally:
        await delete_topics(settings, prefix)


def loading_s(restores: tuple[Restore, ...]) -> float:
    """Wall time from the first load's start to the last one's end: the loads of one batch's
    partitions overlap (they run side by side)."""
    if not restores:
        return 0.0
    return max(r.ended for r in restores) - min(r.ended - r.seconds for r in restores)


def section(runs: list[Failover]) -> str:
    rows = []
    for run in runs:
        restored = sum(r.sessions for r in run.restores)
        read = sum(r.read for r in run.restores)
        loading = loading_s(run.restores)
        held = "never" if run.held_s is None else f"{run.held_s:.1f}"
        served = (
            f"{run.served_s:.1f}"
            if run.served_s is not None
            else f"never ({PARTITIONS - len(run.answered)} of {PARTITIONS} partitions silent)"
        )
        rows.append(
            f"| {run.sessions:,} | {run.standbys} | {served} | {held} | "
            f"{run.held:,} | {run.standby_lag:,} | {len(run.restores)} | {run.kept} | "
            f"{restored:,} | {read:,} | {loading:.1f} | "
            f"{run.survivor_rss_before_mb:,.0f} → {run.survivor_rss_mb:,.0f} | {run.load_s:.0f} |"
        )
    return (
        f"Two `cartpulse worker --clock event` processes (the detector alone, RocksDB, "
        f"{PARTITIONS} partitions, the default 10 s session timeout) share the open sessions; "
        "the second is killed (SIGKILL) once both have caught up and the survivor's standby "
        "copies are within a second's changelog records of the end (*standby lag*, "
        "`cartpulse_table_standby_lag_records`). *Served*: seconds from the "
        "kill until a probe order sent to every partition is on `orders` (a partition takes "
        f"its first record only after loading its sessions from the table; never: not within "
        f"{PROBE_PATIENCE_S:.0f} s). *Held*: seconds "
        "until the survivor's `cartpulse_detector_open_sessions` counts every session (never: "
        f"not within {PROBE_PATIENCE_S:.0f} s; *sessions held* is the most it counted, probes "
        "included). The "
        "partitions the survivor loaded after the kill, those it kept through the rebalance "
        "(its own, given back), the sessions the loads restored, the table "
        "entries read for them and the seconds that took (*loading*: from the first load's "
        "start to the last one's end; the loads run side by side) come from its log "
        "(`bench/failover.py`).\n\n"
        "| open sessions | standbys | served (s) | held (s) | sessions held | standby lag "
        "| partitions loaded | partitions kept "
        "| sessions restored | table entries read | loading (s) | survivor RSS before → after "
        "(MiB) | load + "
        "catch-up (s) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        + "\n".join(rows)
        + target_line(runs)
    )


TARGET_S = 15.0  # a million sessions served again within this, with a standby


def target_line(runs: list[Failover]) -> str:
    """The target's verdict, when the runs include a million sessions with a standby."""
    judged = [r for r in runs if r.sessions >= 1_000_000 and r.standbys >= 1]
    if not judged:
        return ""
    served = [r.served_s for r in judged]
    met = all(s is not None and s <= TARGET_S for s in served)
    shown = ", ".join("never" if s is None else f"{s:.1f} s" for s in served)
    verdict = "met" if met else "not met"
    return (
        f"\n\nTarget (issue 17): with a standby, a million sessions served again within "
        f"{TARGET_S:.0f} s of the kill ({shown}: {verdict})."
    )


async def main(sizes: list[int], standbys: list[int], keep: Path | None) -> None:
    runs = []
    with contextlib.ExitStack() as stack:
        tmp = keep or stack.enter_context(tempfile.TemporaryDirectory(prefix="cartpulse-failover-"))
        for size in sizes:
            for count in standbys:
                log(f"{size:,} sessions, {count} standby")
                work = Path(tmp) / f"{size}-{count}"
                run = await failover(work, size, count)
                log(f"served after {run.served_s} s {run.answered}")
                log(f"held {run.held:,} after {run.held_s} s")
                runs.append(run)
    print(section(runs))  # noqa: T201


def numbers(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=numbers, default=[100_000, 1_000_000])
    parser.add_argument("--standbys", type=numbers, default=[0, 1])
    parser.add_argument(
        "--keep", type=Path, default=None, help="keep the workers' state and logs in this folder"
    )
    arguments = parser.parse_args()
    asyncio.run(main(arguments.sizes, arguments.standbys, arguments.keep))
