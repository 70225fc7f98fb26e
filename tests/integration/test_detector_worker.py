"""The detector worker on the real stack: Kafka, RocksDB state, real processes."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from streams.runtime.kafka import topic_counts
from streams.runtime.settings import Settings
from tests.conftest import ROOT, consume_all
from tests.support.cli import run_cli
from tests.support.workers import wait_for_count, worker

pytestmark = pytest.mark.integration

SAMPLE = ROOT / "data" / "rees46" / "multicategory-2019-10-01-head.csv"


def offline(path: Path, *args: str) -> list[dict[str, object]]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "streams.cli",
            "detect",
            "--input",
            str(path),
            *args,
            "--output",
            "-",
        ],
        capture_output=True,
        check=True,
        timeout=300,
    )
    return [orjson.loads(line) for line in result.stdout.splitlines()]


async def test_event_mode_matches_offline_detect_on_the_rees46_sample(
    settings: Settings, tmp_path: Path
) -> None:
    expected = offline(SAMPLE, "--gap", "10m", "--flush")
    assert len(expected) > 4000
    result = run_cli(settings, "import", "--quiet", str(SAMPLE))
    assert result.returncode == 0, result.stderr
    topic = f"{settings.topic_prefix}abandonments"
    with worker(settings, tmp_path, "--clock", "event", "--gap", "10m"):
        # Waits until the worker has read both inputs, then says the input is over.
        marked = run_cli(settings, "watermark", "end")
        assert marked.returncode == 0, marked.stderr
        await wait_for_count(settings, topic, len(expected), within=60)
        records = await consume_all(settings, topic, len(expected))
        orders = await consume_all(settings, f"{settings.topic_prefix}orders", 214)
    got = [orjson.loads(r.value) for r in records]
    assert sorted(got, key=lambda a: a["abandonment_id"]) == sorted(
        expected, key=lambda a: str(a["abandonment_id"])
    )
    assert all(
        r.key == (a["customer_id"] or a["session_id"]).encode()
        for r, a in zip(records, got, strict=True)
    )
    assert len(orders) == 214


async def test_live_mode_detects_a_silent_shopper_within_gap_plus_two_seconds(
    settings: Settings, tmp_path: Path
) -> None:
    topic = f"{settings.topic_prefix}abandonments"
    with worker(settings, tmp_path, "--clock", "live", "--gap", "5s"):
        await asyncio.sleep(12)  # join the group, become leader, start ticking
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
        await producer.start()
        try:
            now_ms = int(time.time() * 1000)
            event = {
                "event_id": f"live-{now_ms}",
                "type": "cart_item_added",
                "occurred_at": now_ms,
                "session_id": "silent-shopper",
                "customer_id": "c-live",
                "product": {"id": "sku-1", "price": "19.99", "currency": "USD"},
            }
            await producer.send_and_wait(
                f"{settings.topic_prefix}cart", orjson.dumps(event), key=b"silent-shopper"
            )
        finally:
            await producer.stop()
        (record,) = await consume_all(settings, topic, 1, within=30)
        arrived = record.timestamp / 1000  # broker append time of the abandonment
    abandonment = orjson.loads(record.value)
    assert abandonment["kind"] == "cart"
    assert abandonment["customer_id"] == "c-live"
    deadline = now_ms / 1000 + 5
    assert deadline <= arrived <= deadline + 2.0, arrived - deadline


@pytest.mark.parametrize(
    ("sig", "exit_code", "exit_within"),
    [
        # Killed at the first sign of output: mid-stream, with state and offsets not all
        # flushed. Repeats may follow, carrying the same ids.
        (signal.SIGKILL, -signal.SIGKILL, 10),
        # Stopped at the first sign of output, with taken messages not yet persisted: the
        # drain commits what it emitted, so nothing repeats either.
        (signal.SIGTERM, 0, 60),
    ],
    ids=["sigkill-loses-nothing", "sigterm-drains-without-repeats"],
)
async def test_a_signal_mid_stream_loses_no_abandonment(
    settings: Settings, tmp_path: Path, sig: signal.Signals, exit_code: int, exit_within: float
) -> None:
    events = tmp_path / "traffic.jsonl"
    generated = run_cli(
        settings, "simulate", "--events", "60000",
        "--rate", "20",  # 30,000 events span 25 minutes of event time: periods close mid-stream
        "--start", "2026-01-01T00:00:00Z", "--output", str(events),
    )  # fmt: skip
    assert generated.returncode == 0, generated.stderr
    expected = {a["abandonment_id"] for a in offline(events, "--gap", "10m", "--flush")}
    topic = f"{settings.topic_prefix}abandonments"
    # The whole input is in Kafka first, as in a replay: event mode's watermark may then run
    # ahead on a caught-up topic (docs/semantics.md, "Several inputs").
    assert run_cli(settings, "import", "--quiet", str(events)).returncode == 0
    with worker(settings, tmp_path, "--clock", "event", "--gap", "10m") as signalled:
        assert await wait_for_count(settings, topic, 1, within=90, poll=0.05) >= 1
        signalled.send_signal(sig)
        assert signalled.wait(timeout=exit_within) == exit_code
    before_restart = (await topic_counts(settings, [topic]))[topic]
    assert 0 < before_restart < len(expected)

    with worker(settings, tmp_path, "--clock", "event", "--gap", "10m"):
        marked = run_cli(settings, "watermark", "end")  # after the restarted worker caught up
        assert marked.returncode == 0, marked.stderr
        await wait_for_count(settings, topic, len(expected), within=90)
        await asyncio.sleep(2)
        records = await consume_all(settings, topic, len(expected))
    got = [orjson.loads(r.value)["abandonment_id"] for r in records]
    assert set(got) == expected  # none lost, none invented; a SIGKILL's repeats carry the same id
    if sig == signal.SIGTERM:
        assert len(got) == len(set(got))  # nothing repeated: the drain committed what it emitted
