"""Sender benchmarks against the local stack (Kafka, Redis) and the local Twilio test server.

Prints markdown table rows (``make bench`` collects them into docs/BENCHMARKS.md):

1. **shared rate**: 3 replicas (``cartpulse send sms`` processes) under one configured rate; the
   achieved rate next to the configured one, the busiest calendar second, 429s and duplicates;
2. **unlimited**: one replica with limits far above what it can do, i.e. its own throughput,
   next to a baseline from the same run: plain aiohttp POSTs to the same test server with the
   same concurrency (what the HTTP path alone allows).

Usage: ``python bench/senders.py [--rate 50] [--seconds 10] [--unlimited 2000]``. Keep runs
short: the shared-rate run takes ``--seconds`` plus ~5 s of start-up.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.runtime.kafka import delete_topics
from streams.runtime.settings import Settings
from tests.senders.conftest import (
    command,
    ensure_topics,
    produce_commands,
    sender_settings,
)
from tests.senders.replicas import (
    HEADER,
    RateReport,
    rate_report,
    spawn,
    stop,
    wait_for_group,
)
from tests.support.webhooks import ACCOUNT_SID as ACCOUNT
from tests.support.webhooks import AUTH_TOKEN as TOKEN
from tests.twilio_server import TwilioTestServer


def base_settings(partitions: int) -> Settings:
    return Settings(topic_prefix=f"bench{uuid.uuid4().hex[:8]}.", topic_partitions=partitions)


async def shared_rate(rate: float, seconds: float, replicas: int, logs: Path) -> str:
    twilio = TwilioTestServer(ACCOUNT, TOKEN, rate=rate, burst=5)
    await twilio.start()
    prefix = f"bench{uuid.uuid4().hex[:8]}:"
    s = sender_settings(
        base_settings(12), prefix, twilio, sms_rate=rate, sms_burst=1, sms_require_opt_in=False
    )
    await ensure_topics(s, "sms")
    batch = [command(to=f"+1415777{n:04d}") for n in range(int(rate * seconds))]
    processes = spawn(s, "sms", logs, replicas)
    try:
        await wait_for_group(s, s.sender_group_id("sms"), replicas)
        await produce_commands(s, batch)
        await twilio.wait_created(len(batch), within=seconds * 2 + 30)
    finally:
        stop(processes)
        await twilio.stop()
        await delete_topics(s, s.topic_prefix)
    report = rate_report(twilio.requests, twilio.rate_limited)
    return report.row("shared rate", rate, replicas)


async def unlimited(count: int, logs: Path) -> tuple[str, str]:
    twilio = TwilioTestServer(ACCOUNT, TOKEN)
    await twilio.start()
    prefix = f"bench{uuid.uuid4().hex[:8]}:"
    s = sender_settings(
        base_settings(4),
        prefix,
        twilio,
        sms_rate=1e6,
        sms_burst=10_000,
        sms_account_rate=1e6,
        sms_account_burst=10_000,
        sms_require_opt_in=False,
        sender_rate_margin=0.0,
    )
    await ensure_topics(s, "sms")
    batch = [command(to=f"+1415888{n:04d}") for n in range(count)]
    processes = spawn(s, "sms", logs, 1)
    try:
        await wait_for_group(s, s.sender_group_id("sms"), 1)
        await produce_commands(s, batch)
        await twilio.wait_created(len(batch), within=120)
    finally:
        stop(processes)
        await delete_topics(s, s.topic_prefix)
    report = rate_report(twilio.requests, twilio.rate_limited)
    baseline = await raw_http(twilio, count, s.sender_concurrency)
    await twilio.stop()
    return report.row("unlimited, 1 replica", None, 1), baseline.row(
        "baseline: bare aiohttp POSTs", None, 0
    )


async def raw_http(twilio: TwilioTestServer, count: int, concurrency: int) -> RateReport:
    """The same number of POSTs straight to the test server: the ceiling of the HTTP path."""
    twilio.requests.clear()
    url = f"{twilio.base_url}/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    headers = {"Authorization": aiohttp.encode_basic_auth(ACCOUNT, TOKEN)}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(count):
        queue.put_nowait(n)

    async def worker(http: aiohttp.ClientSession) -> None:
        while not queue.empty():
            n = queue.get_nowait()
            form = {"To": f"+1415999{n:04d}", "From": "+15005550006", "Body": "baseline"}
            async with http.post(url, data=form, headers=headers) as response:
                await response.read()

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    return rate_report(twilio.requests, twilio.rate_limited)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="configured segments/s")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the rate run")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--unlimited", type=int, default=2000, help="messages, unlimited run")
    parser.add_argument("--logs", type=Path, help="keep the replicas' logs here")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as directory:
        logs = args.logs or Path(directory)
        logs.mkdir(parents=True, exist_ok=True)
        rows = [await shared_rate(args.rate, args.seconds, args.replicas, logs)]
        rows += await unlimited(args.unlimited, logs)
    print(HEADER)  # noqa: T201 - a benchmark reports on stdout
    for row in rows:
        print(row)  # noqa: T201
    print(f"\n(benchmarks took {time.monotonic() - started:.0f} s)", file=sys.stderr)  # noqa: T201


if __name__ == "__main__":
    asyncio.run(main())
