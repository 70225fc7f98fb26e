"""Journeys live against offline at the size that found the difference: a day of traffic.

``cartpulse simulate``'s shape with returning customers and 40-minute pauses (longer than the
30-minute gap, so periods close mid-session): by default 60,000 events over 24 h of event time,
4,000 shoppers, and the simulated audience's profiles and consents. Offline: ``cartpulse detect
--flush`` piped into ``cartpulse journeys``. Live: the worker in event mode on the real stack
(tests/support/live_offline.py: profiles and consents first, then the events, then
``cartpulse watermark end``), with 8 partitions twice (under two topic prefixes) and with 1.
Every command and decision of a live run is compared with offline as sorted JSON lines.

The worker's rate is the file's events over the time from the first record the worker wrote
(an order or an abandonment) to its last command or decision: reading, detection, the
journeys and ``watermark end`` together, in one process.

``--live-delay`` adds the journeys' live delay: a worker in live mode, a policy with one email
step 20 s after the last activity, and the time from each step's due moment to its command on
the topic (a step is judged ``CARTPULSE_JOURNEYS_LATENESS`` after it is due). ``--timing N``
adds N more 8-partition runs, only timed (median and best). ``--checkout DIR`` runs another
checkout's ``cartpulse`` (offline and the worker) with this interpreter, to measure a commit
against this one. Prints a markdown section; ``make bench`` runs it with ``--live-delay``.
Usage: ``python bench/journeys_live_offline.py [--events N] [--hours H] [--live-delay]
[--timing N] [--checkout DIR]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
from aiokafka import AIOKafkaProducer  # noqa: E402

from streams.agents.worker_process import worker_env, worker_process  # noqa: E402
from streams.contract.events import parse_time  # noqa: E402
from streams.contract.topics import Topic, TopicCatalogue  # noqa: E402
from streams.offline.audience import AudienceConfig, customer_id  # noqa: E402
from streams.offline.simulate import SimulationConfig  # noqa: E402
from streams.runtime.kafka import delete_topics, read_records, topic_counts  # noqa: E402
from streams.runtime.settings import Settings, load_settings  # noqa: E402
from streams.tools.replay import wait_for_audience  # noqa: E402
from tests.support.live_offline import (  # noqa: E402
    JOURNEYS,
    Difference,
    Outputs,
    Timing,
    Traffic,
    cartpulse,
    live,
    offline,
    produce_audience,
    while_running,
    write_audience,
    write_traffic,
)

START_MS = 1_781_100_000_000  # 2026-06-10T14:00:00Z, 10:00 in New York (the audience's zone)
RUNS = (("8 partitions", 8), ("8 partitions, again", 8), ("1 partition", 1))


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)  # noqa: T201


def shape(events: int, hours: float, shoppers: int) -> SimulationConfig:
    return SimulationConfig(
        events=events,
        rate=events / (hours * 3600),
        shoppers=shoppers,
        start_ms=START_MS,
        seed=5,
        break_probability=0.1,
        break_minutes=(40.0, 40.0),
    )


async def run(
    settings: Settings, traffic: Traffic, work: Path, checkout: Path
) -> tuple[Outputs, Timing]:
    """One live run; its topics are deleted afterwards."""
    try:
        return await live(settings, traffic, work, checkout)
    finally:
        await delete_topics(settings, settings.topic_prefix)


def row(label: str, outputs: Outputs, wanted: Outputs, timing: Timing, events: int) -> str:
    commands = Difference.of(outputs.commands, wanted.commands)
    decisions = Difference.of(outputs.decisions, wanted.decisions)
    return (
        f"| {label} | {len(outputs.commands):,} | {len(wanted.commands):,} "
        f"| {len(commands.missing)} | {len(commands.extra)} "
        f"| {len(outputs.decisions):,} | {len(wanted.decisions):,} "
        f"| {len(decisions.missing)} | {len(decisions.extra)} "
        f"| {timing.rate(events):,.0f} | {timing.cpu_s:.1f} |"
    )


# One email 20 s after the last activity, no holdout, no quiet hours: the live delay of a step.
DELAY_POLICY = """
[eligibility.email]
consent = "opt_in"
quiet_hours = ""
[stores.default]
timezone = "America/New_York"
brand = "Cartpulse Demo Store"
url = "https://shop.example.com"
postal_address = "Cartpulse Demo Store, 100 Example Street, Springfield, NY 10001, USA"
support = "help@shop.example.com"
[flows.cart]
trigger = "cart"
[[flows.cart.steps]]
after = "20s"
channel = "email"
template = "cart_email_1"
expires_after = "1h"
"""
GAP_S, SHOPPERS_LIVE = 5, 200


async def live_delay(checkout: Path, work: Path) -> str:
    """A worker in live mode (``--gap 5s``) with the journeys: one silent shopper every 50 ms
    for 10 s, each with a profile and an email opt-in; the delay from each email step's due
    moment (``not_before``) to its command on the topic (the worker's clock)."""
    settings = load_settings(topic_prefix=f"bench{uuid.uuid4().hex[:8]}.", topic_partitions=4)
    policy = work / "policy.toml"
    await asyncio.to_thread(work.mkdir, parents=True)
    await asyncio.to_thread(policy.write_text, DELAY_POLICY)
    env = worker_env(settings, work / "state", **JOURNEYS, CARTPULSE_POLICY_FILE=str(policy))
    await asyncio.to_thread(cartpulse, env, checkout, "topics", "create")
    people = AudienceConfig(SHOPPERS_LIVE, int(time.time() * 1000) - 86_400_000, email_opt_in=1)
    await produce_audience(settings, *write_audience(work, people))
    log = work / "worker.log"
    topic = TopicCatalogue.of(settings).name(Topic.SEND_EMAIL)
    try:
        args = ("--clock", "live", "--gap", f"{GAP_S}s")
        with worker_process(env, log, *args, loglevel="info", cwd=checkout) as worker:
            await while_running(worker, log, wait_for_audience(settings, 120))
            await _silent_shoppers(settings)
            deadline = time.monotonic() + 90
            while (await topic_counts(settings, [topic]))[topic] < SHOPPERS_LIVE:
                if time.monotonic() > deadline or worker.poll() is not None:
                    break
                await asyncio.sleep(0.5)
        delays = sorted(
            [
                r.timestamp / 1000 - parse_time(orjson.loads(r.value)["not_before"]) / 1000
                async for r in read_records(settings, topic)
            ]
        )
    finally:
        await delete_topics(settings, settings.topic_prefix)
    if not delays:
        return "journeys live delay: no email command came out"
    p50, p99 = (delays[min(len(delays) - 1, int(q * len(delays)))] for q in (0.5, 0.99))
    return (
        f"journeys live delay, a step's due moment → its command on the topic ({len(delays)} "
        f"of {SHOPPERS_LIVE}): p50 {p50:.2f} s, **p99 {p99:.2f} s**, max {delays[-1]:.2f} s"
    )


async def _silent_shoppers(settings: Settings) -> None:
    """One cart_item_added each, now, and nothing more: each is abandoned ``GAP_S`` later."""
    cart = TopicCatalogue.of(settings).name(Topic.CART)
    producer = AIOKafkaProducer(**settings.kafka_client_options())
    await producer.start()
    try:
        for n in range(SHOPPERS_LIVE):
            event = {
                "event_id": f"live-{n}", "type": "cart_item_added",
                "occurred_at": int(time.time() * 1000), "session_id": f"live-{n}",
                "customer_id": customer_id(n), "product": {"id": "sku-1", "price": "10.00"},
            }  # fmt: skip
            await producer.send(cart, orjson.dumps(event), key=f"live-{n}".encode())
            await asyncio.sleep(0.05)
        await producer.flush()
    finally:
        await producer.stop()


def commit_of(checkout: Path) -> str:
    done = subprocess.run(
        ["git", "-C", str(checkout), "log", "-1", "--format=%h"],  # noqa: S607 - git on PATH
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return done.stdout.strip() or str(checkout)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--hours", type=float, default=24.0, help="nominal event time")
    parser.add_argument("--shoppers", type=int, default=4_000)
    parser.add_argument("--checkout", type=Path, default=ROOT, help="default: this one")
    parser.add_argument(
        "--live-delay", action="store_true", help="also the journeys' live delay of a step"
    )
    parser.add_argument(
        "--timing", type=int, default=0, metavar="N", help="N more 8-partition runs, only timed"
    )
    args = parser.parse_args()
    started = time.monotonic()
    checkout = args.checkout.resolve()
    with tempfile.TemporaryDirectory(prefix="cartpulse-bench-") as tmp:
        work = Path(tmp)
        traffic = write_traffic(work / "traffic", shape(args.events, args.hours, args.shoppers))
        log(f"{traffic.count:,} events over {traffic.hours:.1f} h; offline")
        wanted = offline(traffic, work / "offline", checkout)
        rows, runs = [], []
        prefix = f"bench{uuid.uuid4().hex[:8]}."
        for n, (label, partitions) in enumerate(RUNS):
            log(f"live: {label}")
            settings = load_settings(topic_prefix=f"{prefix}{n}.", topic_partitions=partitions)
            outputs, timing = await run(settings, traffic, work / f"live{n}", checkout)
            rows.append(row(label, outputs, wanted, timing, traffic.count))
            runs.append(outputs)
        timings, delay = [], ""
        for n in range(args.timing):
            log(f"timing run {n + 1} of {args.timing}")
            settings = load_settings(topic_prefix=f"{prefix}t{n}.", topic_partitions=8)
            timings.append((await run(settings, traffic, work / f"timing{n}", checkout))[1])
        if args.live_delay:
            log("journeys live delay")
            delay = await live_delay(checkout, work / "delay")
    agree = runs[0] == runs[1]
    print(  # noqa: T201
        f"{traffic.count:,} simulated events over {traffic.hours:.1f} h of event time "
        f"(seed 5, {args.shoppers:,} shoppers, 10 % of pauses 40 min); {traffic.customers_seen:,} "
        f"customers, {traffic.returning:,} of them in more than one session; the shipped "
        f"policy; code: {commit_of(checkout)}.\n\n"
        "| run | commands live | offline | missing live | extra live | decisions live "
        "| offline | missing live | extra live | worker events/s | worker CPU s |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        f"The two 8-partition runs agree byte for byte: **{'yes' if agree else 'no'}** "
        f"(commands {'equal' if runs[0].commands == runs[1].commands else 'differ'}, "
        f"decisions {'equal' if runs[0].decisions == runs[1].decisions else 'differ'}). "
        f"The whole run took {time.monotonic() - started:.0f} s."
    )
    if args.live_delay:
        print(f"\nLive mode, 4 partitions: {delay}.")  # noqa: T201
    if timings:
        rates = sorted(t.rate(traffic.count) for t in timings)
        cpu = sorted(t.cpu_s for t in timings)
        print(  # noqa: T201
            f"\n{len(timings)} more runs with 8 partitions, timed only: worker "
            f"{statistics.median(rates):,.0f} events/s median (best {rates[-1]:,.0f}), "
            f"{statistics.median(cpu):.1f} s of worker CPU median (least {cpu[0]:.1f})."
        )


if __name__ == "__main__":
    asyncio.run(main())
