"""``cartpulse replay`` on the real stack: a recorded range rerun in event mode into a
namespace reproduces exactly the abandonments and commands of the original run; ``--dry-run``
marks every command dry_run and nothing reaches the live send topics."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from streams.offline.simulate import SimulationConfig, simulate
from streams.runtime.kafka import read_all, topic_counts
from streams.runtime.settings import Settings
from streams.tools.replay import wait_for_audience, wait_for_journeys
from tests.support.cli import run_cli
from tests.support.workers import JOURNEYS, journeys_worker

pytestmark = pytest.mark.integration

START = "2026-01-01T00:00:00Z"


def _cli(settings: Settings, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return run_cli(settings, *args, env=JOURNEYS, timeout=timeout)


async def _audience(settings: Settings, tmp_path: Path) -> Path:
    """A profile and consents for every shopper of 4,000 events (4.4 h of event time)."""
    # Many shoppers: each customer has one session at a time, as the comparison assumes.
    config = SimulationConfig(events=4_000, rate=0.25, shoppers=1_000_000, seed=11)
    events = list(simulate(config))
    path = tmp_path / "traffic.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    assert _cli(settings, "topics", "create").returncode == 0
    customers = sorted({str(e["customer_id"]) for e in events if e.get("customer_id")})
    producer = AIOKafkaProducer(**settings.kafka_client_options())
    await producer.start()
    try:
        for n, customer in enumerate(customers):
            profile = {
                "customer_id": customer,
                "phone": f"+1415{n:07d}",
                "email": f"{customer}@example.com",
                "first_name": "Sam",
                "timezone": "Europe/Berlin",
            }
            await producer.send(
                f"{settings.topic_prefix}customers", orjson.dumps(profile), key=customer.encode()
            )
            for channel in ("sms", "email"):
                consent = {
                    "customer_id": customer,
                    "channel": channel,
                    "status": "opted_in",
                    "source": "signup",
                    "recorded_at": "2025-12-01T00:00:00.000Z",
                }
                key = f"{customer}:{channel}".encode()
                await producer.send(
                    f"{settings.topic_prefix}consents", orjson.dumps(consent), key=key
                )
        # A catalogue, and clicks of someone outside the traffic (one before the range, one in
        # it): a replay copies the catalogue whole and the clicks of its range.
        for n in (1, 2):
            product = {"product_id": f"p-{n}", "price": "10.00", "updated_at": START}
            await producer.send(
                f"{settings.topic_prefix}products", orjson.dumps(product), key=f"p-{n}".encode()
            )
        for at in ("2025-12-31T00:00:00.000Z", "2026-01-01T01:00:00.000Z"):
            click = {"event_id": f"click-{at}", "type": "link_clicked",
                     "customer_id": "not-a-shopper", "occurred_at": at}  # fmt: skip
            await producer.send(
                f"{settings.topic_prefix}engagement", orjson.dumps(click), key=b"not-a-shopper"
            )
        await producer.flush()
    finally:
        await producer.stop()
    return path


async def _outputs(settings: Settings) -> tuple[list[bytes], list[bytes]]:
    prefix = settings.topic_prefix
    abandonments = sorted([v async for v in read_all(settings, f"{prefix}abandonments")])
    commands = []
    for topic in ("send.sms", "send.email"):
        commands += [v async for v in read_all(settings, f"{prefix}{topic}")]
    return abandonments, sorted(commands)


async def test_replay_reproduces_the_original_run_and_dry_run_sends_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    traffic = await _audience(settings, tmp_path)
    # As a replay does: profiles and consents are in before the events that need them, and
    # the events are all in Kafka before the worker reads them (event mode).
    with journeys_worker(settings, tmp_path):
        await wait_for_audience(settings, 120)
    imported = await asyncio.to_thread(_cli, settings, "import", "--quiet", str(traffic))
    assert imported.returncode == 0, imported.stderr
    with journeys_worker(settings, tmp_path):
        marked = await asyncio.to_thread(_cli, settings, "watermark", "end")
        assert marked.returncode == 0, marked.stderr
        await wait_for_journeys(settings, 180)
    abandonments, commands = await _outputs(settings)
    assert len(abandonments) > 100
    assert len(commands) > 50
    assert {orjson.loads(c)["channel"] for c in commands} == {"sms", "email"}

    end = "2026-01-02T00:00:00Z"
    replayed = await asyncio.to_thread(
        _cli, settings, "replay", "--from", START, "--to", end, "--namespace", "again", "--json",
        timeout=600,
    )  # fmt: skip
    assert replayed.returncode == 0, replayed.stderr
    summary = orjson.loads(replayed.stdout)
    namespace = settings.model_copy(update={"topic_prefix": summary["namespace"]})
    assert namespace.topic_prefix == f"{settings.topic_prefix}again."
    again_abandonments, again_commands = await _outputs(namespace)
    assert again_abandonments == abandonments
    # byte for byte: same ids, same times, same coupons
    assert again_commands == commands, _difference(commands, again_commands)
    assert sum(row["journeys"] for row in summary["report"]) > 0
    assert (summary["copied"]["products"], summary["copied"]["engagement"]) == (2, 1)

    live_before = await topic_counts(settings, [f"{settings.topic_prefix}send.sms"])
    dry = await asyncio.to_thread(
        _cli, settings, "replay", "--from", START, "--to", end, "--namespace", "shadow",
        "--dry-run", "--json", timeout=600,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    shadow = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}shadow."})
    _, shadow_commands = await _outputs(shadow)
    assert len(shadow_commands) == len(commands)
    assert {orjson.loads(c)["mode"] for c in shadow_commands} == {"dry_run"}
    assert await topic_counts(settings, [f"{settings.topic_prefix}send.sms"]) == live_before
    # Only the range is replayed: a window before the traffic copies no event.
    empty = await asyncio.to_thread(
        _cli, settings, "replay", "--from", "2025-01-01T00:00:00Z", "--to", START,
        "--namespace", "before", "--json", timeout=600,
    )  # fmt: skip
    assert empty.returncode == 0, empty.stderr
    copied = orjson.loads(empty.stdout)["copied"]
    assert copied.get("clickstream", 0) == copied.get("cart", 0) == 0
    assert (copied["products"], copied["engagement"]) == (2, 1)  # the click before the range


def _difference(first: list[bytes], second: list[bytes]) -> str:
    only_first = sorted(set(first) - set(second))
    only_second = sorted(set(second) - set(first))
    return f"only in the original: {only_first[:3]}\nonly in the replay: {only_second[:3]}"
