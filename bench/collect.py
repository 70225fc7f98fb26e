"""Events per second one ``cartpulse collect`` process accepts, beside a plain aiohttp handler.

Both servers run as processes of their own on this machine, one after the other, in the same
run: the collector (bearer token, each event checked by the importer's reader, produced to the
local Kafka with ``acks=all`` and answered once acknowledged), and a baseline that reads the
same body with the same JSON parse and answers 200, nothing else. Each is driven for
``--seconds`` by ``--clients`` concurrent clients posting batches of ``--batch`` events of
``cartpulse simulate`` traffic (seed 7). The collector's topics live under a prefix of their
own and are deleted afterwards.

Prints a markdown section (``make bench`` puts it into docs/BENCHMARKS.md).
Usage: ``python bench/collect.py [--seconds 8] [--clients 8] [--batch 100]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streams.runtime.kafka import delete_topics  # noqa: E402
from streams.runtime.settings import Settings  # noqa: E402
from tests.support.net import free_port  # noqa: E402

TOKEN = "bench-secret"  # noqa: S105 - a local benchmark's throwaway token


def baseline_server(port: int) -> None:
    """The baseline: the same body read and JSON parse, then 200."""
    from aiohttp import web

    async def events(request: web.Request) -> web.Response:
        orjson.loads(await request.read())
        return web.Response(body=b'{"results": []}', content_type="application/json")

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/v1/events", events)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def wait_until_up(url: str, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.post(url, data=b"[]", headers=auth()) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


async def drive(
    url: str, bodies: list[bytes], batch: int, clients: int, seconds: float
) -> dict[str, float]:
    """Post ``bodies`` round-robin from ``clients`` coroutines for ``seconds``."""
    latencies: list[float] = []
    accepted = 0
    stop_at = time.monotonic() + seconds

    async def client(n: int, http: aiohttp.ClientSession) -> None:
        nonlocal accepted
        i = n
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            async with http.post(url, data=bodies[i % len(bodies)], headers=auth()) as response:
                answer = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{response.status}: {answer[:200]!r}")
            latencies.append(time.perf_counter() - started)
            accepted += batch
            i += clients

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as http:
        began = time.monotonic()
        await asyncio.gather(*(client(n, http) for n in range(clients)))
        took = time.monotonic() - began
    latencies.sort()
    return {
        "events_per_s": accepted / took,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


def traffic(events: int, batch: int) -> list[bytes]:
    with tempfile.TemporaryDirectory(prefix="cartpulse-bench-") as tmp:
        path = Path(tmp) / "traffic.jsonl"
        subprocess.run(
            [sys.executable, "-m", "streams.cli", "simulate", "--events", str(events),
             "--seed", "7", "--start", "2026-01-01T00:00:00Z", "--output", str(path)],
            check=True, capture_output=True, cwd=ROOT,
        )  # fmt: skip
        lines = [orjson.loads(line) for line in path.read_bytes().splitlines() if line]
    return [orjson.dumps(lines[i : i + batch]) for i in range(0, len(lines) - batch + 1, batch)]


async def run(args: argparse.Namespace) -> str:
    bodies = traffic(args.batch * 200, args.batch)
    event_bytes = sum(map(len, bodies)) / (len(bodies) * args.batch)
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    settings = Settings(topic_prefix=prefix)
    results: dict[str, dict[str, float]] = {}
    for name in ("baseline", "collector"):
        port = free_port()
        if name == "baseline":
            command = [sys.executable, str(Path(__file__)), "--baseline-server", str(port)]
        else:
            command = [sys.executable, "-m", "streams.cli", "collect", "--loglevel", "warn"]
        env = {
            **os.environ,
            "CARTPULSE_TOPIC_PREFIX": prefix,
            "CARTPULSE_COLLECT_PORT": str(port),
            "CARTPULSE_COLLECT_METRICS_PORT": str(free_port()),
            "CARTPULSE_COLLECT_TOKENS": orjson.dumps({"default": TOKEN}).decode(),
        }
        server = await asyncio.create_subprocess_exec(*command, env=env, cwd=ROOT)
        try:
            url = f"http://127.0.0.1:{port}/v1/events"
            await wait_until_up(url)
            await drive(url, bodies, args.batch, args.clients, 1.0)  # warm-up
            results[name] = await drive(url, bodies, args.batch, args.clients, args.seconds)
        finally:
            server.terminate()
            await asyncio.wait_for(server.wait(), 30)
    await delete_topics(settings, prefix)
    collector, baseline = results["collector"], results["baseline"]
    return (
        "| server | events/s accepted | request p50 | request p99 |\n|---|---|---|---|\n"
        + "\n".join(
            f"| {label} | {r['events_per_s']:,.0f} | {r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms |"
            for label, r in (
                ("`cartpulse collect` (checked, produced, acknowledged by Kafka)", collector),
                ("plain aiohttp handler (the same JSON parse, nothing else)", baseline),
            )
        )
        + f"\n\nOne collector process, {args.clients} concurrent clients posting batches of "
        f"{args.batch} `cartpulse simulate` events (about {event_bytes:.0f} bytes each) for "
        f"{args.seconds:.0f} s each, the clients on the same machine; the collector reaches "
        f"{collector['events_per_s'] / baseline['events_per_s']:.0%} of the baseline's rate. "
        "Run more collector processes behind the load balancer to take more "
        "(docs/collector.md)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--baseline-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_server:
        baseline_server(args.baseline_server)
        return
    print(asyncio.run(run(args)))  # noqa: T201 - the section is the script's output


if __name__ == "__main__":
    main()
