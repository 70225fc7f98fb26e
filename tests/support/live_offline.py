"""The same simulated traffic offline and through the worker, compared byte for byte.

Offline is ``cartpulse detect --flush`` then ``cartpulse journeys`` with the audience's profiles
and consents and the events' orders. Live is the worker in event mode on the real stack, as a
replay runs it: the profiles and consents are produced first and a worker with the journeys
reads them and stops; then the events are imported and a worker reads them, ``cartpulse
watermark end`` says the input is over, and the run ends once the journeys have settled.
docs/semantics.md ("The guarantee") promises the same commands and decisions. The integration
test and ``bench/journeys_live_offline.py`` both run this; ``checkout`` runs another checkout's
``cartpulse`` (a commit to compare with), with this interpreter.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson
from aiokafka import AIOKafkaProducer

from streams.agents.worker_process import worker_env, worker_process
from streams.contract.events import parse_time
from streams.contract.topics import Topic, TopicCatalogue
from streams.offline.audience import AudienceConfig, audience, customer_id
from streams.offline.simulate import SimulationConfig, simulate
from streams.offline.sources import read_rees46
from streams.runtime.kafka import read_all, read_records
from streams.runtime.settings import Settings
from streams.tools.replay import wait_for_audience, wait_for_journeys

ROOT = Path(__file__).resolve().parents[2]
COUPON_SECRET = "live-offline-secret"
JOURNEYS = {"CARTPULSE_JOURNEYS_ENABLED": "true", "CARTPULSE_COUPON_SECRET": COUPON_SECRET}
COMMANDS = (Topic.SEND_SMS, Topic.SEND_EMAIL)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Traffic:
    """A simulated file of events and its audience's profiles and consents, as JSONL."""

    events: Path
    customers: Path
    consents: Path
    count: int
    customers_seen: int  # known shoppers in the events
    returning: int  # of them, those with more than one session
    hours: float  # event time from the first event to the last


@dataclass(frozen=True, slots=True)
class Outputs:
    """Every command and every decision of a run, as sorted JSON lines."""

    commands: list[bytes]
    decisions: list[bytes]


@dataclass(frozen=True, slots=True)
class Timing:
    """When the worker wrote its first and its last record of a live run (its own clock, ms),
    and the CPU time the worker that read the events used, start-up included."""

    first_ms: int
    last_ms: int
    cpu_s: float

    def rate(self, events: int) -> float:
        return events / max(0.001, (self.last_ms - self.first_ms) / 1000)


def write_traffic(directory: Path, config: SimulationConfig) -> Traffic:
    """``config``'s events, and a profile and SMS and email consents for every shopper (given a
    day before the first event, as ``cartpulse simulate --audience`` does)."""
    directory.mkdir(parents=True, exist_ok=True)
    events = directory / "events.jsonl"
    sessions: dict[str, set[str]] = {}
    times = []
    with events.open("wb") as out:
        for record in simulate(config):
            out.write(orjson.dumps(record) + b"\n")
            times.append(str(record["occurred_at"]))
            if customer := record.get("customer_id"):
                sessions.setdefault(str(customer), set()).add(str(record["session_id"]))
    people = AudienceConfig(config.shoppers, config.start_ms - 86_400_000, config.seed)
    customers, consents = write_audience(directory, people)
    span = (parse_time(times[-1]) - parse_time(times[0])) / 3_600_000
    returning = sum(len(ids) > 1 for ids in sessions.values())
    return Traffic(
        events, customers, consents, len(times), len(sessions), returning, span,
    )  # fmt: skip


def rees46_traffic(directory: Path, sample: Path) -> Traffic:
    """A REES46 file of events, and a profile and consents for each of its shoppers (its
    ``user_id``s, in order of first appearance), given a day before its first event."""
    directory.mkdir(parents=True, exist_ok=True)
    first_ms, last_ms, sessions = 0, 0, dict[str, set[str]]()
    for record in read_rees46(sample):
        if record.payload is None:
            continue
        event = orjson.loads(record.payload)
        if not first_ms:
            first_ms = parse_time(event["occurred_at"])
        last_ms = parse_time(event["occurred_at"])
        if customer := event.get("customer_id"):
            sessions.setdefault(str(customer), set()).add(str(event["session_id"]))
    ids = list(sessions)
    people = AudienceConfig(len(ids), first_ms - 86_400_000)
    customers, consents = write_audience(directory, people, ids)
    returning = sum(len(seen) > 1 for seen in sessions.values())
    span = (last_ms - first_ms) / 3_600_000
    return Traffic(sample, customers, consents, 0, len(ids), returning, span)


def write_audience(
    directory: Path, people: AudienceConfig, ids: Sequence[str] = ()
) -> tuple[Path, Path]:
    """The profiles and the consents of ``people``, as JSONL files in ``directory``; with
    ``ids``, shopper ``i`` is ``ids[i]`` instead of ``cust-i``."""
    customers, consents = directory / "customers.jsonl", directory / "consents.jsonl"
    renamed = {customer_id(index): id_ for index, id_ in enumerate(ids)}
    with customers.open("wb") as profiles, consents.open("wb") as given:
        for person in audience(people):
            value = person.value
            value["customer_id"] = renamed.get(value["customer_id"], value["customer_id"])
            out = profiles if person.topic is Topic.CUSTOMERS else given
            out.write(orjson.dumps(value) + b"\n")
    return customers, consents


def cartpulse(env: dict[str, str], checkout: Path, *args: str, timeout: float = 900) -> str:
    """``cartpulse ARGS`` of ``checkout``; its stdout. Raises with its stderr when it fails."""
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env=env, cwd=checkout, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"cartpulse {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


async def _cli_async(env: dict[str, str], checkout: Path, *args: str) -> None:
    """``cartpulse`` as a child of the event loop: killed when the waiting is cancelled."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streams.cli", *args,
        env=env, cwd=checkout, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        _, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0:
        raise RuntimeError(f"cartpulse {' '.join(args)} failed:\n{stderr.decode()[-3000:]}")


def offline(traffic: Traffic, work: Path, checkout: Path = ROOT) -> Outputs:
    """``cartpulse detect --flush`` piped into ``cartpulse journeys`` (the shipped policy)."""
    work.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTPULSE_")} | JOURNEYS
    found, commands = work / "abandonments.jsonl", work / "commands.jsonl"
    cartpulse(
        env, checkout, "detect", "--input", str(traffic.events), "--flush", "--output", str(found)
    )
    decisions = work / "decisions.jsonl"
    cartpulse(
        env, checkout, "journeys", "--abandonments", str(found),
        "--customers", str(traffic.customers), "--consents", str(traffic.consents),
        "--orders", str(traffic.events), "--output", str(commands), "--decisions", str(decisions),
    )  # fmt: skip
    return Outputs(_sorted_lines(commands), _sorted_lines(decisions))


def _sorted_lines(path: Path) -> list[bytes]:
    return sorted(line for line in path.read_bytes().splitlines() if line)


async def live(
    settings: Settings, traffic: Traffic, work: Path, checkout: Path = ROOT, patience: float = 900
) -> tuple[Outputs, Timing]:
    """The worker of ``checkout`` in event mode over ``traffic`` (topics under ``settings``'
    prefix, with its partitions); every command and decision it wrote, and when. Raises when
    the worker's log holds a traceback."""
    env = worker_env(settings, work / "state", **JOURNEYS)
    await asyncio.to_thread(cartpulse, env, checkout, "topics", "create")
    await produce_audience(settings, traffic.customers, traffic.consents)
    log = work / "worker.log"
    with worker_process(env, log, "--clock", "event", loglevel="info", cwd=checkout) as worker:
        await while_running(worker, log, wait_for_audience(settings, patience))
    # The detector's watermark needs every event in Kafka before it reads them (a worker
    # reading while a producer writes both topics can make some late): the worker stops first.
    await asyncio.to_thread(cartpulse, env, checkout, "import", "--quiet", str(traffic.events))
    with worker_process(env, log, "--clock", "event", loglevel="info", cwd=checkout) as worker:
        marked = _cli_async(env, checkout, "watermark", "end", "--timeout", str(patience))
        await while_running(worker, log, marked)
        await while_running(worker, log, wait_for_journeys(settings, patience))
        cpu_s = await asyncio.to_thread(cpu_seconds, worker.pid)
    await asyncio.to_thread(_no_traceback, log)
    name = TopicCatalogue.of(settings).name
    commands: list[bytes] = []
    for topic in COMMANDS:
        commands += [value async for value in read_all(settings, name(topic))]
    decisions = [value async for value in read_all(settings, name(Topic.DECISIONS))]
    return Outputs(sorted(commands), sorted(decisions)), await _timing(settings, cpu_s)


async def while_running(
    worker: subprocess.Popen[bytes], log: Path, waiting: Coroutine[Any, Any, T]
) -> T:
    """``waiting``'s result; raises with the end of the log as soon as the worker exits."""
    task = asyncio.ensure_future(waiting)
    while not task.done():
        await asyncio.wait([task], timeout=1.0)
        if not task.done() and worker.poll() is not None:
            task.cancel()
            text = await asyncio.to_thread(log.read_text, errors="replace")
            raise RuntimeError(f"the worker exited ({worker.returncode}):\n{text[-4000:]}")
    return task.result()


def _no_traceback(log: Path) -> None:
    text = log.read_text(errors="replace")
    if "Traceback" in text:
        raise RuntimeError(f"the worker's log holds a traceback:\n{text[-4000:]}")


async def produce_audience(settings: Settings, customers: Path, consents: Path) -> None:
    """Profiles keyed by customer, consents by ``customer:channel``, acknowledged."""
    name = TopicCatalogue.of(settings).name
    producer = AIOKafkaProducer(**settings.kafka_client_options())
    await producer.start()
    try:
        for path, topic in (
            (customers, Topic.CUSTOMERS),
            (consents, Topic.CONSENTS),
        ):
            for line in path.read_bytes().splitlines():
                record = orjson.loads(line)
                key = record["customer_id"]
                if topic is Topic.CONSENTS:
                    key = f"{key}:{record['channel']}"
                await producer.send(name(topic), line, key=key.encode())
        await producer.flush()
    finally:
        await producer.stop()


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a running process, its threads included (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _timing(settings: Settings, cpu_s: float) -> Timing:
    """From the first record the worker wrote (an order or an abandonment: the detector at
    work) to the last command or decision (the journeys done)."""
    name = TopicCatalogue.of(settings).name
    first: list[int] = []
    for topic in (Topic.ORDERS, Topic.ABANDONMENTS):
        first += [r.timestamp async for r in read_records(settings, name(topic))]
    last: list[int] = []
    for topic in (*COMMANDS, Topic.DECISIONS):
        last += [r.timestamp async for r in read_records(settings, name(topic))]
    return Timing(min(first), max(last), cpu_s)


@dataclass(frozen=True, slots=True)
class Difference:
    """What a live run wrote that offline did not (extra), and the reverse (missing)."""

    missing: list[bytes]
    extra: list[bytes]

    @classmethod
    def of(cls, live: list[bytes], offline: list[bytes]) -> Difference:
        from collections import Counter

        have, want = Counter(live), Counter(offline)
        return cls(sorted((want - have).elements()), sorted((have - want).elements()))

    def __str__(self) -> str:
        shown = [f"{len(self.missing)} missing, {len(self.extra)} extra"]
        shown += [f"  missing: {line.decode()}" for line in self.missing[:5]]
        shown += [f"  extra:   {line.decode()}" for line in self.extra[:5]]
        return "\n".join(shown)
